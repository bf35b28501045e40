/*
 * What parse_protobuf.c and deparse_protobuf.c share, included after their PostgreSQL
 * headers: protobuf's wire types, and pgcalm_copy_error.
 */
#ifndef PGCALM_SHARED_H
#define PGCALM_SHARED_H

/* Protobuf's wire types. */
#define WT_VARINT 0
#define WT_FIXED64 1
#define WT_LEN 2
#define WT_FIXED32 5

/*
 * The error a PG_CATCH block is handling, as libpg_query's entry points return it:
 * copied with malloc (it outlives the memory context the caller then leaves), the error
 * state flushed.
 */
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
