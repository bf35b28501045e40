/*
 * pgcalm's entry to libpg_query's deparser: a parse tree in protobuf's wire format (a
 * ParseResult message of libpg_query's pg_query.proto, as the pg_query crate encodes
 * it) read straight into PostgreSQL nodes, then deparsed as pg_query_deparse_protobuf
 * does.
 *
 * Why: libpg_query first decodes the bytes into upb messages in an arena, then walks
 * the messages to build the nodes. For the small trees lint deparses (its fix SQL), the
 * decoding cost twice the deparsing. Here one walk of the bytes builds the nodes.
 *
 * What is read comes from libpg_query's generated per-node read lists
 * (pg_query_readfuncs_defs.c and pg_query_readfuncs_conds.c, which its upb reader
 * shares), through the READ_* macros defined below; the field numbers come from
 * pg_query.proto (build.rs turns it into pgcalm_pb_fields.h), as for the writer in
 * parse_protobuf.c. The value nodes, lists and A_Const, which the lists leave to each
 * reader, are read here as libpg_query's reader reads them. A test deparses the
 * fixtures both ways and compares the text.
 *
 * How: a message is read field by field in the order of its read list, which is the
 * order of its field numbers, and prost writes fields in that order: a cursor moves
 * forward through the message, and a field the list asks for is where the cursor is or
 * is absent (the cursor remembers the field it is at, so an absent field costs one
 * comparison). Protobuf allows any order (parse_protobuf.c writes fields in reverse):
 * a message is first checked, and one whose fields are out of order is searched whole
 * for each field. As in protobuf, the last of several values of a singular field
 * wins, an absent field reads as its default (0, false, NULL), and fields the lists do
 * not ask for are skipped.
 */
#include "pg_query.h"
#include "pg_query_internal.h"

#include "postgres.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/nodes.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"

#include "postgres_deparse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgcalm_pb_fields.h"
#include "shared.h"

/* One field: its number, wire type, and value (for WT_LEN, the bytes it holds). */
typedef struct
{
	uint32_t	number;
	int			wire_type;
	uint64_t	varint;			/* WT_VARINT, or the length for WT_LEN */
	const uint8_t *value;		/* the value's first byte */
}			PbField;

/* A field number above any: the cursor's field once it is at the message's end. */
#define PB_END UINT32_MAX

/* One message being read: its bytes [start, end), and the cursor of an ordered read. */
typedef struct
{
	const uint8_t *start;
	const uint8_t *end;
	/* The field at the cursor (number PB_END at the end), and the bytes after it. */
	PbField		next;
	const uint8_t *pos;
	/* The field number last asked for: asking for it again or a smaller one rewinds. */
	uint32_t	last_asked;
	/* Its fields are out of order: each is searched for in the whole message. */
	bool		search;
}			PbMsg;

/* What the generated readers take: `const OUT_TYPE(...) msg` is a const pointer. */
typedef PbMsg *PbMsgRef;

#define OUT_TYPE(typename, typename_c) PbMsgRef

/*
 * How deep the message being read is. libpg_query's reader refuses trees deeper than
 * PG_QUERY_PROTOBUF_MAX_DEPTH messages ("could not parse protobuf"), and so does this
 * one: the caller's stack check bounds the recursion, this bounds what is accepted.
 */
static __thread int pb_depth;

pg_noreturn static void
pb_malformed(void)
{
	elog(ERROR, "could not parse protobuf");
}

/* pb_read_varint, for one of any length. */
static pg_noinline uint64_t
pb_read_long_varint(const uint8_t **p, const uint8_t *end)
{
	uint64_t	value = 0;

	for (int shift = 0; shift < 64; shift += 7)
	{
		uint8_t		byte;

		if (*p >= end)
			pb_malformed();
		byte = *(*p)++;
		value |= (uint64_t) (byte & 0x7f) << shift;
		if (byte < 0x80)
			return value;
	}
	pb_malformed();
}

/* Inlined for the common case: one byte (a tag, a short length, a small number). */
static pg_attribute_always_inline uint64_t
pb_read_varint(const uint8_t **p, const uint8_t *end)
{
	if (likely(*p < end && **p < 0x80))
		return *(*p)++;
	return pb_read_long_varint(p, end);
}

/* The field at `*p` (< end), with `*p` moved past it. */
static pg_attribute_always_inline PbField
pb_read_field(const uint8_t **p, const uint8_t *end)
{
	PbField		field;
	uint64_t	tag = pb_read_varint(p, end);

	field.number = (uint32_t) (tag >> 3);
	field.wire_type = (int) (tag & 7);
	field.varint = 0;
	switch (field.wire_type)
	{
		case WT_VARINT:
			field.value = *p;
			field.varint = pb_read_varint(p, end);
			break;
		case WT_FIXED64:
			if (end - *p < 8)
				pb_malformed();
			field.value = *p;
			*p += 8;
			break;
		case WT_LEN:
			field.varint = pb_read_varint(p, end);
			if ((uint64_t) (end - *p) < field.varint)
				pb_malformed();
			field.value = *p;
			*p += field.varint;
			break;
		case WT_FIXED32:
			if (end - *p < 4)
				pb_malformed();
			field.value = *p;
			*p += 4;
			break;
		default:
			pb_malformed();
	}
	if (field.number == 0)
		pb_malformed();
	return field;
}

/* Moves the cursor of an ordered read to the next field. */
static inline void
pb_advance(PbMsg *msg)
{
	if (msg->pos < msg->end)
		msg->next = pb_read_field(&msg->pos, msg->end);
	else
		msg->next.number = PB_END;
}

/* Moves the cursor of an ordered read to the message's first field. */
static inline void
pb_rewind(PbMsg *msg)
{
	msg->pos = msg->start;
	pb_advance(msg);
}

/* Moves the cursor of an ordered read to field `number`'s first value, if any. */
static inline void
pb_seek(PbMsg *msg, uint32_t number)
{
	if (number <= msg->last_asked)
		pb_rewind(msg);
	msg->last_asked = number;
	while (msg->next.number < number)
		pb_advance(msg);
}

/*
 * Starts reading the message in `bytes` (a WT_LEN field's value): in order if its
 * fields are (checked first, so that no field is ever missed).
 */
static inline void
pb_msg_init(PbMsg *msg, const uint8_t *bytes, size_t len)
{
	uint32_t	previous = 0;

	msg->start = bytes;
	msg->end = bytes + len;
	msg->last_asked = 0;
	msg->search = false;
	for (const uint8_t *p = bytes; p < msg->end;)
	{
		PbField		field = pb_read_field(&p, msg->end);

		if (field.number < previous)
		{
			msg->search = true;
			return;
		}
		previous = field.number;
	}
	pb_rewind(msg);
}

/* pb_get, for any field. */
static pg_noinline bool
pb_get_any(PbMsg *msg, uint32_t number, int wire_type, PbField *out)
{
	bool		found = false;

	if (msg->search)
	{
		for (const uint8_t *p = msg->start; p < msg->end;)
		{
			PbField		field = pb_read_field(&p, msg->end);

			if (field.number == number && field.wire_type == wire_type)
			{
				*out = field;
				found = true;
			}
		}
		return found;
	}
	pb_seek(msg, number);
	while (msg->next.number == number)
	{
		if (msg->next.wire_type == wire_type)
		{
			*out = msg->next;
			found = true;
		}
		pb_advance(msg);
	}
	return found;
}

/*
 * The last value of field `number` with wire type `wire_type`: false when there is none.
 * Inlined for the common case, a field absent (the read lists ask for every field, and
 * most hold their default) from a message read in order.
 */
static pg_attribute_always_inline bool
pb_get(PbMsg *msg, uint32_t number, int wire_type, PbField *out)
{
	if (!msg->search && number > msg->last_asked && msg->next.number > number)
	{
		msg->last_asked = number;
		return false;
	}
	return pb_get_any(msg, number, wire_type, out);
}

/* pb_next, for any field. */
static pg_noinline bool
pb_next_any(PbMsg *msg, uint32_t number, const uint8_t **cursor, PbField *out)
{
	if (!msg->search)
	{
		if (*cursor == NULL)
		{
			pb_seek(msg, number);
			*cursor = msg->start;
		}
		while (msg->next.number == number)
		{
			bool		match = msg->next.wire_type == WT_LEN;

			*out = msg->next;
			pb_advance(msg);
			if (match)
				return true;
		}
		return false;
	}
	if (*cursor == NULL)
		*cursor = msg->start;
	while (*cursor < msg->end)
	{
		PbField		field = pb_read_field(cursor, msg->end);

		if (field.number == number && field.wire_type == WT_LEN)
		{
			*out = field;
			return true;
		}
	}
	return false;
}

/*
 * The values of repeated field `number` (wire type WT_LEN) one by one: `*cursor` starts
 * NULL; false once there are no more. Inlined for an absent field, as pb_get.
 */
static pg_attribute_always_inline bool
pb_next(PbMsg *msg, uint32_t number, const uint8_t **cursor, PbField *out)
{
	if (*cursor == NULL && !msg->search && number > msg->last_asked &&
		msg->next.number > number)
	{
		msg->last_asked = number;
		return false;
	}
	return pb_next_any(msg, number, cursor, out);
}

static pg_attribute_always_inline uint64_t
pb_varint(PbMsg *msg, uint32_t number)
{
	PbField		field;

	return pb_get(msg, number, WT_VARINT, &field) ? field.varint : 0;
}

static inline double
pb_double(PbMsg *msg, uint32_t number)
{
	PbField		field;
	double		value = 0;

	/* Little-endian, as on every platform the pg_query crate builds for. */
	if (pb_get(msg, number, WT_FIXED64, &field))
		memcpy(&value, field.value, sizeof(value));
	return value;
}

/* A string field as a palloc'd C string: NULL when absent or empty. */
static char *
pb_string(PbMsg *msg, uint32_t number)
{
	PbField		field;
	char	   *s;

	if (!pb_get(msg, number, WT_LEN, &field) || field.varint == 0)
		return NULL;
	s = palloc(field.varint + 1);
	memcpy(s, field.value, field.varint);
	s[field.varint] = '\0';
	return s;
}

/* A string field as libpg_query's value nodes take it: "" when absent. */
static char *
pb_string_or_empty(PbMsg *msg, uint32_t number)
{
	char	   *s = pb_string(msg, number);

	return s != NULL ? s : pstrdup("");
}

/* Enters a nested message: its depth checked as libpg_query's reader checks it. */
static inline void
pb_enter(PbMsg *sub, const PbField *field)
{
	if (++pb_depth > PG_QUERY_PROTOBUF_MAX_DEPTH)
		pb_malformed();
	pb_msg_init(sub, field->value, field->varint);
}

static inline void
pb_leave(void)
{
	pb_depth--;
}

static Node *_readNode(const PbField *field);


#define FIELD(msgtype, outname) PGF_##msgtype##_##outname

#define READ_INT_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = (int32) pb_varint(msg, FIELD(msgtype, outname));
#define READ_UINT_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = (uint32) pb_varint(msg, FIELD(msgtype, outname));
#define READ_UINT64_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = (uint64) pb_varint(msg, FIELD(msgtype, outname));
#define READ_LONG_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = (int64) pb_varint(msg, FIELD(msgtype, outname));
#define READ_FLOAT_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = pb_double(msg, FIELD(msgtype, outname));
#define READ_BOOL_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = pb_varint(msg, FIELD(msgtype, outname)) != 0;

#define READ_CHAR_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f) && __f.varint > 0) \
			node->fldname = (char) __f.value[0]; \
	}

#define READ_STRING_FIELD(msgtype, outname, outname_json, fldname) \
	node->fldname = pb_string(msg, FIELD(msgtype, outname));

#define READ_ENUM_FIELD(msgtype, enumtype, outname, outname_json, fldname) \
	node->fldname = _intToEnum##enumtype((int) pb_varint(msg, FIELD(msgtype, outname)));

#define READ_LIST_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		const uint8_t *__cursor = NULL; \
		PbField __f; \
		while (pb_next(msg, FIELD(msgtype, outname), &__cursor, &__f)) \
			node->fldname = lappend(node->fldname, _readNode(&__f)); \
	}

/* libpg_query's reader leaves these out too (planner fields, never in a raw tree). */
#define READ_BITMAPSET_FIELD(msgtype, outname, outname_json, fldname)

#define READ_NODE_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
			node->fldname = *_readNode(&__f); \
	}

#define READ_NODE_PTR_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
			node->fldname = _readNode(&__f); \
	}

#define READ_ABSTRACT_PTR_FIELD(msgtype, outname, outname_json, fldname, fldtype) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
			node->fldname = (fldtype) _readNode(&__f); \
	}

#define READ_VALUE_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
			node->fldname = *((Value *) _readNode(&__f)); \
	}

#define READ_VALUE_PTR_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
			node->fldname = (Value *) _readNode(&__f); \
	}

#define READ_SPECIFIC_NODE_FIELD(msgtype, typename, typename_underscore, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
		{ \
			PbMsg __sub; \
			pb_enter(&__sub, &__f); \
			node->fldname = *_read##typename(&__sub); \
			pb_leave(); \
		} \
	}

/* This recurses without passing through _readNode: check the stack here too. */
#define READ_SPECIFIC_NODE_PTR_FIELD(msgtype, typename, typename_underscore, outname, outname_json, fldname) \
	{ \
		PbField __f; \
		if (pb_get(msg, FIELD(msgtype, outname), WT_LEN, &__f)) \
		{ \
			PbMsg __sub; \
			check_stack_depth(); \
			pb_enter(&__sub, &__f); \
			node->fldname = _read##typename(&__sub); \
			pb_leave(); \
		} \
	}

/* A case of _readNode: the Node message's field for a node type, and its reader. */
#define READ_COND(typename, typename_c, typename_underscore, typename_underscore_upcase, typename_cast, outname) \
	case PGF_Node_##outname: \
		result = (Node *) _read##typename_c(&inner); \
		break;

static String *
_readString(const PbMsgRef msg)
{
	return makeString(pb_string_or_empty(msg, PGF_String_sval));
}

#include "pg_query_enum_defs.c"
#include "pg_query_readfuncs_defs.c"

static List *
_readList(const PbMsgRef msg)
{
	List	   *list = NULL;
	const uint8_t *cursor = NULL;
	PbField		item;

	while (pb_next(msg, PGF_List_items, &cursor, &item))
		list = lappend(list, _readNode(&item));
	return list;
}

static A_Const *
_readAConst(const PbMsgRef msg)
{
	A_Const    *node = makeNode(A_Const);
	/* The value: the last of the oneof's fields present. */
	uint32_t	val_field = 0;
	PbField		val = {0};

	node->location = (int32) pb_varint(msg, PGF_A_Const_location);
	if (pb_varint(msg, PGF_A_Const_isnull) != 0)
	{
		node->isnull = true;
		return node;
	}
	for (const uint8_t *p = msg->start; p < msg->end;)
	{
		PbField		field = pb_read_field(&p, msg->end);

		switch (field.number)
		{
			case PGF_A_Const_ival:
			case PGF_A_Const_fval:
			case PGF_A_Const_boolval:
			case PGF_A_Const_sval:
			case PGF_A_Const_bsval:
				if (field.wire_type == WT_LEN)
				{
					val_field = field.number;
					val = field;
				}
				break;
		}
	}
	if (val_field != 0)
	{
		PbMsg		inner;

		pb_enter(&inner, &val);
		switch (val_field)
		{
			case PGF_A_Const_ival:
				node->val.ival = *makeInteger((int32) pb_varint(&inner, PGF_Integer_ival));
				break;
			case PGF_A_Const_fval:
				node->val.fval = *makeFloat(pb_string_or_empty(&inner, PGF_Float_fval));
				break;
			case PGF_A_Const_boolval:
				node->val.boolval = *makeBoolean(pb_varint(&inner, PGF_Boolean_boolval) != 0);
				break;
			case PGF_A_Const_sval:
				node->val.sval = *makeString(pb_string_or_empty(&inner, PGF_String_sval));
				break;
			case PGF_A_Const_bsval:
				node->val.bsval = *makeBitString(pb_string_or_empty(&inner, PGF_BitString_bsval));
				break;
		}
		pb_leave();
	}
	return node;
}

/*
 * The node of a Node message (the bytes of `field`): NULL for an empty one, as in
 * libpg_query's reader; its oneof holds one node, the last written if several.
 */
static Node *
_readNode(const PbField *field)
{
	const uint8_t *end = field->value + field->varint;
	PbField		node_field = {0};
	PbMsg		inner;
	Node	   *result = NULL;

	check_stack_depth();

	for (const uint8_t *p = field->value; p < end;)
	{
		PbField		f = pb_read_field(&p, end);

		if (f.wire_type == WT_LEN)
			node_field = f;
	}
	if (node_field.number == 0)
		return NULL;

	/* The Node message and its node's message: two levels, as libpg_query counts. */
	if (++pb_depth > PG_QUERY_PROTOBUF_MAX_DEPTH)
		pb_malformed();
	pb_enter(&inner, &node_field);
	switch (node_field.number)
	{
#include "pg_query_readfuncs_conds.c"

		case PGF_Node_integer:
			result = (Node *) makeInteger((int32) pb_varint(&inner, PGF_Integer_ival));
			break;
		case PGF_Node_float:
			result = (Node *) makeFloat(pb_string_or_empty(&inner, PGF_Float_fval));
			break;
		case PGF_Node_boolean:
			result = (Node *) makeBoolean(pb_varint(&inner, PGF_Boolean_boolval) != 0);
			break;
		case PGF_Node_string:
			result = (Node *) makeString(pb_string_or_empty(&inner, PGF_String_sval));
			break;
		case PGF_Node_bit_string:
			result = (Node *) makeBitString(pb_string_or_empty(&inner, PGF_BitString_bsval));
			break;
		case PGF_Node_a_const:
			result = (Node *) _readAConst(&inner);
			break;
		case PGF_Node_list:
			result = (Node *) _readList(&inner);
			break;
		default:
			elog(ERROR, "unsupported protobuf node type: %d", (int) node_field.number);
	}
	pb_leave();
	pb_depth--;
	return result;
}

/* The raw statements of a ParseResult message. May throw. */
static List *
read_parse_result(const uint8_t *data, size_t len)
{
	PbMsg		parse_result;
	const uint8_t *cursor = NULL;
	PbField		stmt;
	List	   *stmts = NULL;

	pb_depth = 1;
	pb_msg_init(&parse_result, data, len);
	while (pb_next(&parse_result, PGF_ParseResult_stmts, &cursor, &stmt))
	{
		PbMsg		raw_stmt;

		pb_enter(&raw_stmt, &stmt);
		stmts = lappend(stmts, _readRawStmt(&raw_stmt));
		pb_leave();
	}
	return stmts;
}

/*
 * pg_query_deparse_protobuf's answer (default options), through this file's reader:
 * the same memory context, stack depth set-up, joining and error handling. Free it
 * with pg_query_free_deparse_result.
 */
PgQueryDeparseResult
pgcalm_deparse_protobuf(const char *data, size_t len)
{
	PgQueryDeparseResult result = {0};
	MemoryContext ctx = pg_query_enter_memory_context();
	PostgresDeparseOpts opts;

	MemSet(&opts, 0, sizeof(PostgresDeparseOpts));
	PG_TRY();
	{
		StringInfoData str;
		List	   *stmts = read_parse_result((const uint8_t *) data, len);

		initStringInfo(&str);
		foreach_ptr(RawStmt, raw_stmt, stmts)
		{
			deparseRawStmtOpts(&str, raw_stmt, &opts);
			if (foreach_current_index(raw_stmt) < list_length(stmts) - 1)
				appendStringInfoString(&str, "; ");
		}
		result.query = strdup(str.data);
	}
	PG_CATCH();
	{
		result.error = pgcalm_copy_error(ctx);
	}
	PG_END_TRY();

	pg_query_exit_memory_context(ctx);
	return result;
}
