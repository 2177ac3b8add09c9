#include "errors.h"

#include <string.h>
#include <uv.h>

static const char *const messages[] = {"success",
#define NARF_ERR_MSG(name, code, msg) msg,
                                       NARF_ERRORS(NARF_ERR_MSG)
#undef NARF_ERR_MSG
};

static const char *const codes[] = {"ok",
#define NARF_ERR_CODE(name, code, msg) code,
                                    NARF_ERRORS(NARF_ERR_CODE)
#undef NARF_ERR_CODE
};

_Static_assert(sizeof(messages) / sizeof(messages[0]) == NARF_E_COUNT,
               "one message per error");

const char *narf_strerror(int err)
{
	if (err < 0 || err >= NARF_E_COUNT)
		return "unknown error";
	return messages[err];
}

const char *narf_errcode(int err)
{
	if (err < 0 || err >= NARF_E_COUNT)
		return "internal";
	return codes[err];
}

int narf_err_from_code(const char *code)
{
	for (int i = 0; code != NULL && i < NARF_E_COUNT; i++)
		if (strcmp(codes[i], code) == 0)
			return i;
	return NARF_EINTERNAL;
}

int narf_err_from_uv(int uv_status)
{
	switch (uv_status) {
	case 0:
		return NARF_OK;
	case UV_ENOMEM:
		return NARF_ENOMEM;
	case UV_EINVAL:
		return NARF_EINVAL;
	case UV_ECONNREFUSED:
	case UV_EHOSTUNREACH:
	case UV_ENETUNREACH:
	case UV_EADDRNOTAVAIL:
		return NARF_ECONNECT;
	case UV_ETIMEDOUT:
		return NARF_ETIMEOUT;
	case UV_EOF:
	case UV_ECONNRESET:
	case UV_EPIPE:
		return NARF_ECLOSED;
	default:
		return NARF_EIO;
	}
}
