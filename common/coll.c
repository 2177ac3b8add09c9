/*
 * What every collection shares: thresholds, encoding names, the element
 * count and freeing, dispatched on the encoding (coll.h).
 */
#include "coll.h"

#include <assert.h>

#include "coll_hash.h"
#include "coll_set.h"

void narf_coll_limits_default(struct narf_coll_limits *lim)
{
	lim->hash_lp_entries = 512;
	lim->hash_lp_value = 64;
	lim->set_intset_entries = 512;
	lim->zset_lp_entries = 128;
	lim->zset_lp_value = 64;
	lim->list_lp_size = -2;
}

const char *narf_enc_name(enum narf_enc enc)
{
	static const char *const names[NARF_ENC_COUNT] = {
	        [NARF_ENC_LISTPACK] = "listpack",
	        [NARF_ENC_INTSET] = "intset",
	        [NARF_ENC_HASHTABLE] = "hashtable",
	        [NARF_ENC_QUICKLIST] = "quicklist",
	        [NARF_ENC_SKIPLIST] = "skiplist",
	};

	return (unsigned)enc < NARF_ENC_COUNT ? names[enc] : "unknown";
}

uint64_t narf_coll_len(const struct narf_coll *c)
{
	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		return narf_hash_len(c);
	case NARF_TYPE_SET:
		return narf_set_len(c);
	default:
		break;
	}
	assert(!"not a collection type");
	return 0;
}

void narf_coll_free(const struct narf_coll_ctx *ctx, struct narf_coll *c)
{
	switch ((enum narf_type)c->type) {
	case NARF_TYPE_HASH:
		narf_hash_free(ctx, c);
		break;
	case NARF_TYPE_SET:
		narf_set_free(ctx, c);
		break;
	default:
		assert(!"not a collection type");
	}
}
