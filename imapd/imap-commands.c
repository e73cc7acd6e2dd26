/* The command table (STYLE 6): name, handler, the states a command is
 * allowed in, and whether it may follow UID. */
#include "config.h"
#include "imap-session.h"

#include <strings.h>

#define SEL CMDF_SELECTED
#define AUTHSEL (CMDF_AUTH | CMDF_SELECTED)

static const struct imap_cmd_def commands[] = {
	/* any state (RFC 9051 6.1) */
	{ "CAPABILITY", cmd_capability, CMDF_ANY },
	{ "NOOP", cmd_noop, CMDF_ANY },
	{ "LOGOUT", cmd_logout, CMDF_ANY },
	{ "ID", cmd_id, CMDF_ANY },
	/* not authenticated (6.2) */
	{ "STARTTLS", cmd_starttls, CMDF_NOT_AUTH },
	{ "LOGIN", cmd_login, CMDF_NOT_AUTH },
	{ "AUTHENTICATE", cmd_authenticate, CMDF_NOT_AUTH },
	/* authenticated (6.3) */
	{ "ENABLE", cmd_enable, AUTHSEL },
	{ "SELECT", cmd_select, AUTHSEL },
	{ "EXAMINE", cmd_examine, AUTHSEL },
	{ "CREATE", cmd_create, AUTHSEL },
	{ "DELETE", cmd_delete, AUTHSEL },
	{ "RENAME", cmd_rename, AUTHSEL },
	{ "SUBSCRIBE", cmd_subscribe, AUTHSEL },
	{ "UNSUBSCRIBE", cmd_unsubscribe, AUTHSEL },
	{ "LIST", cmd_list, AUTHSEL },
	{ "LSUB", cmd_lsub, AUTHSEL },
	{ "NAMESPACE", cmd_namespace, AUTHSEL },
	{ "STATUS", cmd_status, AUTHSEL },
	{ "APPEND", cmd_append, AUTHSEL },
	{ "IDLE", cmd_idle, AUTHSEL },
	{ "GETQUOTA", cmd_getquota, AUTHSEL },
	{ "GETQUOTAROOT", cmd_getquotaroot, AUTHSEL },
	{ "SETQUOTA", cmd_setquota, AUTHSEL },
	/* selected (6.4) */
	{ "CHECK", cmd_check, SEL },
	{ "CLOSE", cmd_close, SEL },
	{ "UNSELECT", cmd_unselect, SEL },
	{ "EXPUNGE", cmd_expunge, SEL | CMDF_UID },
	{ "SEARCH", cmd_search, SEL | CMDF_UID | CMDF_NO_EXPUNGE },
	{ "FETCH", cmd_fetch, SEL | CMDF_UID | CMDF_NO_EXPUNGE },
	{ "STORE", cmd_store, SEL | CMDF_UID | CMDF_NO_EXPUNGE },
	{ "COPY", cmd_copy, SEL | CMDF_UID },
	{ "MOVE", cmd_move, SEL | CMDF_UID },
	{ "UID", cmd_uid, SEL },
};

const struct imap_cmd_def *imap_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcasecmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Dispatched by the session, which looks at the command after UID. */
enum cmd_result cmd_uid(struct imap_cmd *cmd)
{
	return cmd_bad(cmd, "UID needs a command");
}
