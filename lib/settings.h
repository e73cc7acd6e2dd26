/* The configuration: one typed table of every setting (settings-table.def)
 * drives parsing, errors, `-n` and the reference page (STYLE 7).
 *
 * A struct settings starts with every default; settings_load_file() and
 * settings_override() change values, checking each against its type and
 * bounds. Errors name FILE:LINE and the key. */
#ifndef CONGVU_SETTINGS_H
#define CONGVU_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum setting_type {
	ST_STRING, ST_PATH, ST_SIZE, ST_UINT, ST_BOOL, ST_DURATION, ST_ENUM,
	ST_LISTEN, ST_NETS, ST_DOMAINS, ST_HOSTPORT, ST_MILTERS, ST_TLSVER,
	ST_TLSPOLICY, ST_PERCENTS,
};

enum setting_id {
#define SETTING(id, section, key, type, def, check, help) id,
#include "lib/settings-table.def"
#undef SETTING
	SETTING_COUNT
};

struct settings;

/* A new configuration holding the built-in defaults. */
struct settings *settings_new(void);
void settings_free(struct settings **set);

/* Reads an INI file. Returns 0, or -1 with *error_r (caller frees) naming
 * path:line. When missing_ok and the file does not exist, returns 0. */
int settings_load_file(struct settings *set, const char *path, bool missing_ok, char **error_r);
/* The same from an open stream; path names it in errors. */
int settings_load_stream(struct settings *set, FILE *f, const char *path, char **error_r);
/* Applies "SECTION.KEY=VALUE" (the -o option). */
int settings_override(struct settings *set, const char *assignment, char **error_r);
/* Sets one value after checking it. */
int settings_set(struct settings *set, const char *section, const char *key, const char *value,
		 char **error_r);

/* The common command line: -c FILE (NULL: the default path, which may be
 * missing) and the -o assignments. Returns a loaded configuration or NULL
 * with *error_r. */
struct settings *settings_from_cli(const char *conf_path, char *const *overrides, int n_overrides,
				   char **error_r);
/* The default configuration file path. */
const char *settings_default_path(void);

/* Typed getters. The value's type must match the setting's. */
const char *settings_str(const struct settings *set, enum setting_id id);
/* ST_SIZE (bytes), ST_UINT, ST_DURATION (seconds), ST_BOOL (0/1). */
uint64_t settings_num(const struct settings *set, enum setting_id id);
bool settings_bool(const struct settings *set, enum setting_id id);
/* Whether the value was set by the file or -o rather than left default. */
bool settings_is_set(const struct settings *set, enum setting_id id);

/* Splits a list value (items separated by commas and/or spaces) into a
 * NULL-terminated array (caller frees with settings_list_free). */
char **settings_list(const struct settings *set, enum setting_id id, int *count_r);
void settings_list_free(char ***list);

/* The whole configuration as text (settings_dump's), and back: what a root
 * parent that read the file hands to its unprivileged children on reload.
 * settings_from_text returns NULL with *error_r on a malformed text. */
char *settings_to_text(const struct settings *set);
struct settings *settings_from_text(const char *text, char **error_r);

/* Writes every setting as "section.key = value" (the -n option). */
void settings_dump(const struct settings *set, FILE *out);
/* Writes the reference page (markdown table) of every setting. */
void settings_reference(FILE *out);
/* Writes a sample configuration file: every setting commented out at its
 * default, under its help text. */
void settings_sample(FILE *out);

/* Parsers shared with other modules; 0 on success, -1 on a bad value. */
int parse_size(const char *s, uint64_t *bytes_r);
int parse_duration(const char *s, uint64_t *seconds_r);

#endif
