/*
 * pgcalm_copy_error: the error a PG_CATCH block is handling, as libpg_query's entry points
 * return it: copied with malloc (it outlives the memory context the caller then leaves),
 * the error state flushed. Shared by parse_protobuf.c and deparse_protobuf.c, after their
 * PostgreSQL includes.
 */
#ifndef PGCALM_COPY_ERROR_H
#define PGCALM_COPY_ERROR_H

static PgQueryError *
pgcalm_copy_error(MemoryContext ctx)
{
	ErrorData  *error_data;
	PgQueryError *error;

	MemoryContextSwitchTo(ctx);
	error_data = CopyErrorData();
	error = malloc(sizeof(PgQueryError));
	error->message = strdup(error_data->message);
	error->filename = strdup(error_data->filename);
	error->funcname = strdup(error_data->funcname);
	error->context = NULL;
	error->lineno = error_data->lineno;
	error->cursorpos = error_data->cursorpos;
	FlushErrorState();
	return error;
}

#endif
