/*
 * pgcalm's entry to PostgreSQL's parser: libpg_query's raw parse, with the parse tree
 * written straight into protobuf's wire format, in the schema of libpg_query's
 * pg_query.proto (the one the pg_query crate decodes).
 *
 * Why: libpg_query's own encoder first builds every node as a upb message in an arena,
 * then serializes the messages, then copies the bytes out. That was a fifth of
 * `pgcalm lint`'s CPU time. Here one walk writes the bytes, into one buffer, once.
 *
 * What is written comes from libpg_query's generated per-node field lists
 * (pg_query_outfuncs_defs.c and pg_query_outfuncs_conds.c, shared there by its JSON and
 * protobuf writers), through the WRITE_* macros defined below; the field numbers come
 * from pg_query.proto (build.rs turns it into pgcalm_pb_fields.h). A node type the lists
 * gain is therefore written without a change here. The Rust side decodes the bytes as
 * it decodes libpg_query's (prost); a test compares both trees on the fixtures.
 *
 * How: protobuf puts a nested message's length before its bytes, so the buffer is
 * filled from its end towards its start: a message's fields first, then its length, then
 * its tag. Fields therefore land in reverse order, which protobuf allows (a decoder takes
 * fields in any order); the elements of a repeated field are walked last to first so that
 * they keep their order. As upb does for proto3, fields holding their default (0, false,
 * an empty string) are left out; a message field is written whenever the node has it,
 * even empty.
 */
#include "pg_query.h"
#include "pg_query_internal.h"

#include "postgres.h"
#include "access/relation.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "nodes/value.h"
#include "utils/datum.h"
#include "miscadmin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgcalm_pb_fields.h"
#include "shared.h"

/* The Node oneof's field for Float is `float`, which the shared lists spell `float_`. */
#define PGF_Node_float_ PGF_Node_float

/* The buffer being written: its bytes are [pos, end) of the allocation [start, end). */
typedef struct
{
	char	   *start;
	char	   *pos;
	char	   *end;
}			PbBuffer;

static __thread PbBuffer pb;

static void
pb_grow(size_t need)
{
	size_t		used = pb.end - pb.pos;
	size_t		cap = pb.end - pb.start;
	size_t		new_cap = cap ? cap * 2 : 64 * 1024;
	char	   *grown;

	while (new_cap - used < need)
		new_cap *= 2;
	/* malloc, not palloc: the bytes outlive the parse's memory context. */
	grown = malloc(new_cap);
	if (grown == NULL)
		elog(ERROR, "out of memory writing the parse tree");
	if (used > 0)
		memcpy(grown + new_cap - used, pb.pos, used);
	free(pb.start);
	pb.start = grown;
	pb.end = grown + new_cap;
	pb.pos = pb.end - used;
}

static inline size_t
pb_used(void)
{
	return pb.end - pb.pos;
}

static inline void
pb_bytes(const char *bytes, size_t len)
{
	if ((size_t) (pb.pos - pb.start) < len)
		pb_grow(len);
	pb.pos -= len;
	memcpy(pb.pos, bytes, len);
}

/* The bytes of a varint: 1 to 10. */
static inline int
pb_varint_len(uint64_t value)
{
	/* 7 bits a byte: bits 1-7 take 1, 8-14 take 2, ... (value | 1: clz of 0 is undefined) */
	return (int) ((64 - __builtin_clzll(value | 1) + 6) / 7);
}

static void
pb_varint_slow(uint64_t value)
{
	int			n = pb_varint_len(value);
	char	   *p;

	if ((size_t) (pb.pos - pb.start) < (size_t) n)
		pb_grow(n);
	pb.pos -= n;
	for (p = pb.pos; value >= 0x80; value >>= 7)
		*p++ = (char) ((value & 0x7f) | 0x80);
	*p = (char) value;
}

/*
 * Inlined everywhere: a tag is a constant, so its bytes are worked out at compile time,
 * and most values (tags, short lengths, small numbers) take one or two bytes.
 */
static inline __attribute__((always_inline)) void
pb_varint(uint64_t value)
{
	if (value < 0x80 && pb.pos > pb.start)
	{
		*--pb.pos = (char) value;
		return;
	}
	if (value < 0x4000 && pb.pos - pb.start >= 2)
	{
		pb.pos -= 2;
		pb.pos[0] = (char) ((value & 0x7f) | 0x80);
		pb.pos[1] = (char) (value >> 7);
		return;
	}
	pb_varint_slow(value);
}

static inline void
pb_tag(uint32_t field, int wire_type)
{
	pb_varint(((uint64_t) field << 3) | (uint64_t) wire_type);
}

/*
 * How deep the message being written is. libpg_query refuses trees deeper than
 * PG_QUERY_PROTOBUF_MAX_DEPTH messages, and so does this writer, with the same error:
 * the decoder recurses once per level, and the callers' stacks are sized for that limit.
 */
static __thread int pb_depth;

/* Starts a nested message (or a packed field): the mark pb_close takes. */
static inline size_t
pb_open(void)
{
	if (++pb_depth > PG_QUERY_PROTOBUF_MAX_DEPTH)
		elog(ERROR, "parse tree is nested too deeply to serialize to protobuf");
	return pb_used();
}

/* Ends the field whose bytes were written since `mark` (from pb_open). */
static inline void
pb_close(size_t mark, uint32_t field)
{
	pb_depth--;
	pb_varint(pb_used() - mark);
	pb_tag(field, WT_LEN);
}

static inline void
pb_string(const char *s, uint32_t field)
{
	size_t		len;

	if (s == NULL || s[0] == '\0')
		return;
	len = strlen(s);
	pb_bytes(s, len);
	pb_varint(len);
	pb_tag(field, WT_LEN);
}

/* int32 and enum values: a negative one is its 64-bit two's complement, as protobuf says. */
static inline void
pb_int(int64_t value, uint32_t field)
{
	if (value == 0)
		return;
	pb_varint((uint64_t) value);
	pb_tag(field, WT_VARINT);
}

static inline void
pb_uint(uint64_t value, uint32_t field)
{
	if (value == 0)
		return;
	pb_varint(value);
	pb_tag(field, WT_VARINT);
}

static inline void
pb_double(double value, uint32_t field)
{
	if (value == 0)
		return;
	/* Little-endian, as on every platform the pg_query crate builds for. */
	pb_bytes((const char *) &value, sizeof(value));
	pb_tag(field, WT_FIXED64);
}

/* The writers' first argument is unused: the lists pass the enclosing message there. */
#define OUT_TYPE(typename, typename_c) void *

#define FIELD(msgtype, outname) PGF_##msgtype##_##outname

#define WRITE_INT_FIELD(msgtype, outname, outname_json, fldname) \
	pb_int((int32) node->fldname, FIELD(msgtype, outname));
#define WRITE_UINT_FIELD(msgtype, outname, outname_json, fldname) \
	pb_uint((uint32) node->fldname, FIELD(msgtype, outname));
#define WRITE_UINT64_FIELD(msgtype, outname, outname_json, fldname) \
	pb_uint((uint64) node->fldname, FIELD(msgtype, outname));
#define WRITE_LONG_FIELD(msgtype, outname, outname_json, fldname) \
	pb_int((int64) node->fldname, FIELD(msgtype, outname));
#define WRITE_FLOAT_FIELD(msgtype, outname, outname_json, fldname) \
	pb_double(node->fldname, FIELD(msgtype, outname));
#define WRITE_BOOL_FIELD(msgtype, outname, outname_json, fldname) \
	pb_uint(node->fldname ? 1 : 0, FIELD(msgtype, outname));

#define WRITE_CHAR_FIELD(msgtype, outname, outname_json, fldname) \
	if (node->fldname != 0) { \
		char __c[2] = {node->fldname, '\0'}; \
		pb_string(__c, FIELD(msgtype, outname)); \
	}

#define WRITE_STRING_FIELD(msgtype, outname, outname_json, fldname) \
	pb_string(node->fldname, FIELD(msgtype, outname));

#define WRITE_ENUM_FIELD(msgtype, enumtype, outname, outname_json, fldname) \
	pb_int(_enumToInt##enumtype(node->fldname), FIELD(msgtype, outname));

#define WRITE_LIST_FIELD(msgtype, outname, outname_json, fldname) \
	if (node->fldname != NULL) \
		out_node_list(node->fldname, FIELD(msgtype, outname));

#define WRITE_BITMAPSET_FIELD(msgtype, outname, outname_json, fldname) \
	out_bitmapset(node->fldname, FIELD(msgtype, outname));

#define WRITE_NODE_FIELD(msgtype, outname, outname_json, fldname) \
	{ \
		size_t __mark = pb_open(); \
		_outNode(NULL, &node->fldname); \
		pb_close(__mark, FIELD(msgtype, outname)); \
	}

#define WRITE_NODE_PTR_FIELD(msgtype, outname, outname_json, fldname) \
	if (node->fldname != NULL) { \
		size_t __mark = pb_open(); \
		_outNode(NULL, node->fldname); \
		pb_close(__mark, FIELD(msgtype, outname)); \
	}

#define WRITE_SPECIFIC_NODE_FIELD(msgtype, typename, typename_underscore, outname, outname_json, fldname) \
	{ \
		size_t __mark = pb_open(); \
		_out##typename(NULL, &node->fldname); \
		pb_close(__mark, FIELD(msgtype, outname)); \
	}

/* This recurses without passing through _outNode: check the stack here too. */
#define WRITE_SPECIFIC_NODE_PTR_FIELD(msgtype, typename, typename_underscore, outname, outname_json, fldname) \
	if (node->fldname != NULL) { \
		size_t __mark; \
		check_stack_depth(); \
		__mark = pb_open(); \
		_out##typename(NULL, node->fldname); \
		pb_close(__mark, FIELD(msgtype, outname)); \
	}

/*
 * A Node message's one field: the node's own message, under its type's field number
 * (`node_field`, set for _outNode to close the field: one mark for all its cases keeps
 * its stack frame small, which the depth of the trees it can write depends on).
 */
#define OUT_NODE(typename, typename_c, typename_underscore, typename_underscore_upcase, typename_cast, fldname) \
	node_field = PGF_Node_##fldname; \
	_out##typename_c(NULL, (const typename_cast *) obj);

static void _outNode(void *out, const void *obj);

/* Each element of `list` as a Node message in field `field`, in the list's order. */
static void
out_node_list(const List *list, uint32_t field)
{
	for (int i = list_length(list) - 1; i >= 0; i--)
	{
		size_t		mark = pb_open();

		_outNode(NULL, lfirst(list_nth_cell(list, i)));
		pb_close(mark, field);
	}
}

/* A packed repeated uint64 field of the set's members, in ascending order. */
static void
out_bitmapset(const Bitmapset *set, uint32_t field)
{
	int			count = 0;
	int			member = -1;
	int		   *members;
	size_t		mark;

	if (bms_is_empty(set))
		return;
	while ((member = bms_next_member(set, member)) >= 0)
		count++;
	members = palloc(sizeof(int) * count);
	count = 0;
	member = -1;
	while ((member = bms_next_member(set, member)) >= 0)
		members[count++] = member;
	mark = pb_open();
	while (count > 0)
		pb_varint((uint64_t) members[--count]);
	pfree(members);
	pb_close(mark, field);
}

/* The value nodes and lists, which the generated lists leave to each writer. */

static void
_outList(void *out, const List *node)
{
	out_node_list(node, PGF_List_items);
}

static void
_outIntList(void *out, const List *node)
{
	out_node_list(node, PGF_IntList_items);
}

static void
_outOidList(void *out, const List *node)
{
	out_node_list(node, PGF_OidList_items);
}

static void
_outInteger(void *out, const Integer *node)
{
	pb_int(node->ival, PGF_Integer_ival);
}

static void
_outFloat(void *out, const Float *node)
{
	pb_string(node->fval, PGF_Float_fval);
}

static void
_outBoolean(void *out, const Boolean *node)
{
	pb_uint(node->boolval ? 1 : 0, PGF_Boolean_boolval);
}

static void
_outString(void *out, const String *node)
{
	pb_string(node->sval, PGF_String_sval);
}

static void
_outBitString(void *out, const BitString *node)
{
	pb_string(node->bsval, PGF_BitString_bsval);
}

static void
_outAConst(void *out, const A_Const *node)
{
	pb_int(node->location, PGF_A_Const_location);
	pb_uint(node->isnull ? 1 : 0, PGF_A_Const_isnull);
	if (!node->isnull)
	{
		size_t		mark = pb_open();

		switch (nodeTag(&node->val.node))
		{
			case T_Integer:
				_outInteger(NULL, &node->val.ival);
				pb_close(mark, PGF_A_Const_ival);
				break;
			case T_Float:
				_outFloat(NULL, &node->val.fval);
				pb_close(mark, PGF_A_Const_fval);
				break;
			case T_Boolean:
				_outBoolean(NULL, &node->val.boolval);
				pb_close(mark, PGF_A_Const_boolval);
				break;
			case T_String:
				_outString(NULL, &node->val.sval);
				pb_close(mark, PGF_A_Const_sval);
				break;
			case T_BitString:
				_outBitString(NULL, &node->val.bsval);
				pb_close(mark, PGF_A_Const_bsval);
				break;
			default:
				Assert(false);
		}
	}
}

#include "pg_query_enum_defs.c"
#include "pg_query_outfuncs_defs.c"

/* A Node message's bytes: nothing for NULL (an empty Node), as libpg_query writes it. */
static void
_outNode(void *out, const void *obj)
{
	uint32_t	node_field = 0;
	size_t		mark;

	check_stack_depth();

	if (obj == NULL)
		return;

	mark = pb_open();
	switch (nodeTag(obj))
	{
#include "pg_query_outfuncs_conds.c"

		default:
			elog(WARNING, "could not dump unrecognized node type: %d",
				 (int) nodeTag(obj));
			break;
	}
	if (node_field != 0)
		pb_close(mark, node_field);
	else
		pb_depth--;
}

/* What pgcalm_parse_protobuf returns; free it with pgcalm_free_parse_result. */
typedef struct
{
	/* A ParseResult message (pg_query.proto), `len` bytes. */
	const char *data;
	size_t		len;
	/* The allocation `data` lies in. */
	char	   *buffer;
	/* Set when the text does not parse (then there is no data). */
	PgQueryError *error;
	char	   *stderr_buffer;
}			PgcalmParseResult;

/* The ParseResult message of the raw statements `tree`, into `pb`. May throw. */
static void
write_parse_result(const List *tree)
{
	if (tree != NULL)
	{
		for (int i = list_length(tree) - 1; i >= 0; i--)
		{
			size_t		mark = pb_open();

			_outRawStmt(NULL, (const RawStmt *) list_nth(tree, i));
			pb_close(mark, PGF_ParseResult_stmts);
		}
	}
	pb_int(PG_VERSION_NUM, PGF_ParseResult_version);
}

/*
 * pg_query_parse_protobuf_opts's answer, through this file's writer: the same error
 * handling, and the same memory context and stack depth set-up around the parse.
 */
PgcalmParseResult
pgcalm_parse_protobuf(const char *input, int parser_options)
{
	MemoryContext ctx;
	PgQueryInternalParsetreeAndError parsed;
	PgcalmParseResult result = {0};

	ctx = pg_query_enter_memory_context();
	parsed = pg_query_raw_parse(input, parser_options);
	result.stderr_buffer = parsed.stderr_buffer;
	result.error = parsed.error;
	if (result.error != NULL)
	{
		pg_query_exit_memory_context(ctx);
		return result;
	}

	pb.start = pb.pos = pb.end = NULL;
	pb_depth = 0;
	PG_TRY();
	{
		write_parse_result(parsed.tree);
		result.buffer = pb.start;
		result.data = pb.pos;
		result.len = pb_used();
	}
	PG_CATCH();
	{
		free(pb.start);
		result.error = pgcalm_copy_error(ctx);
	}
	PG_END_TRY();
	pb.start = pb.pos = pb.end = NULL;

	pg_query_exit_memory_context(ctx);
	return result;
}

void
pgcalm_free_parse_result(PgcalmParseResult result)
{
	if (result.error != NULL)
		pg_query_free_error(result.error);
	free(result.buffer);
	free(result.stderr_buffer);
}
