/*
 * The key iterator of keyspec.h: the fixed positions first, then the keys a
 * count names.
 */
#include "keyspec.h"

#include "engine.h"

bool narf_keys_any(const struct narf_command *cmd)
{
	return cmd->first_key > 0 || narf_cmd_numkeys_at(cmd) > 0;
}

void narf_keys_begin(struct narf_keyiter *it,
                     const struct narf_command *cmd,
                     int argc,
                     const char **argv,
                     const size_t *argvlen)
{
	long long n;
	int at = narf_cmd_numkeys_at(cmd);

	it->count = 0;
	it->count_first = 0;
	it->count_last = -1;
	if (at > 0 && at < argc && narf_str_to_ll(argv[at], argvlen[at], &n) &&
	    n > 0 && n <= argc - at - 1) {
		it->count = 1;
		it->count_first = at + 1;
		it->count_last = at + (int)n;
	}
	if (cmd->first_key > 0) {
		it->next = cmd->first_key;
		it->last = cmd->last_key < 0 ? argc + cmd->last_key
		                             : cmd->last_key;
		if (it->last >= argc)
			it->last = argc - 1;
		it->step = cmd->key_step > 0 ? cmd->key_step : 1;
	} else {
		it->next = 1;
		it->last = 0; /* no fixed run */
		it->step = 1;
	}
}

int narf_keys_next(struct narf_keyiter *it)
{
	int i;

	if (it->next <= it->last) {
		i = it->next;
		it->next += it->step;
		return i;
	}
	if (it->count) {
		it->count = 0;
		it->next = it->count_first;
		it->last = it->count_last;
		it->step = 1;
		return narf_keys_next(it);
	}
	return -1;
}
