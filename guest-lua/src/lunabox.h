/*
 * lunabox.h: what the parts of the guest glue share.
 *
 * The glue is split by concern:
 *   runner.c    the `runner.run-hook` export, the Wizer init function, the
 *               outcome of one hook (error kinds, traceback, result)
 *   sandbox.c   which standard library functions a hook gets (spec sec. 6)
 *   globals.c   read-only engine globals and the lazy `resources` object
 *   runfns.c    RunBash, RunCommand, RunExpect, RunPowerShell, RunSync
 *   json.c      JSON text <-> Lua values
 *   buf.c       a growable byte buffer owned by the Lua GC, UTF-8 helpers
 *   sjlj.c      setjmp/longjmp runtime on wasm exception handling
 */
#ifndef LUNABOX_H
#define LUNABOX_H

#include <stddef.h>
#include <stdint.h>

#include "lua.h"

/* Deepest nesting of JSON arrays/objects the guest can ever handle (sizes
 * its path arrays); the limit in force is lbx_json_max_depth, set by the
 * host for each hook (hook option max-depth) and never above this. */
#define LBX_JSON_DEPTH_CEIL 256

/* The limits of the running hook (hook options), set by run-hook. */
extern int lbx_json_max_depth;
extern size_t lbx_max_call_bytes;

/* Registry names. */
#define LBX_EMPTY_ARRAY_MT "lunabox.emptyarray" /* marks tables from `[]` */
#define LBX_RUN_FAILURE_MT "lunabox.runfailure" /* Run exit-failure tables */
#define LBX_PROTECTED "lunabox.protected"       /* read-only global values */
#define LBX_RESOURCES "lunabox.resources"       /* the `resources` object */
#define LBX_TRACEBACK "lunabox.traceback"       /* last error's traceback */

/* ---- buf.c ---- */

/* A byte buffer whose memory is freed by the Lua GC (it lives in a full
 * userdata), so a Lua error in the middle of building it leaks nothing. */
typedef struct lbx_buf {
  char *data;
  size_t len;
  size_t cap;
} lbx_buf;

/* Push a new empty buffer userdata and return it. */
lbx_buf *lbx_buf_new(lua_State *L);
/* Make room for `n` more bytes (raises a memory error on failure). */
void lbx_buf_reserve(lua_State *L, lbx_buf *b, size_t n);
void lbx_buf_add(lua_State *L, lbx_buf *b, const char *s, size_t n);
void lbx_buf_addc(lua_State *L, lbx_buf *b, char c);
void lbx_buf_adds(lua_State *L, lbx_buf *b, const char *s);
/* Take the bytes (malloc'ed, NUL-terminated) out of the buffer, leaving it
 * empty; the caller frees them. Returns NULL when out of memory. */
char *lbx_buf_steal(lbx_buf *b, size_t *len);

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if invalid. */
size_t lbx_utf8_seq(const unsigned char *s, size_t n);
/* Copy s[0..n) to a malloc'ed string with each invalid UTF-8 byte replaced
 * by U+FFFD, so that it can cross the component boundary as a `string`.
 * Returns NULL when out of memory. */
char *lbx_utf8_sanitize(const char *s, size_t n, size_t *out_len);

/* ---- json.c ---- */

/* Decode JSON text and push the value (nil for `null`). On bad input raises
 * a Lua error "<what>: <problem> at line L, column C". Arrays become
 * sequences (an empty array gets the LBX_EMPTY_ARRAY_MT metatable so that it
 * encodes back as `[]`), objects tables, integers that fit 64 bits Lua
 * integers, other numbers floats. */
void lbx_json_decode(lua_State *L, const char *s, size_t len, const char *what);

/* Error value raised by lbx_json_encode when the output would pass `limit`
 * bytes (compare with lua_touserdata). */
extern const char lbx_too_large;

/* Append the JSON text of the value at `idx` to `b`. Errors name the path of
 * the offending value under `root` (e.g. "value.items[3]: ..."), preceded by
 * the position of the Lua caller when `with_where` is set (for calls from a
 * C function called by Lua). A non-zero `limit` stops with the light
 * userdata &lbx_too_large as error value once the buffer would grow beyond
 * `limit` bytes. */
void lbx_json_encode(lua_State *L, int idx, lbx_buf *b, const char *root,
                     size_t limit, int with_where);

/* ---- sandbox.c ---- */

/* Open the libraries a hook gets and apply the sandbox rules. */
void lbx_open_sandbox(lua_State *L);
/* Set when the first hook starts. Before, at pre-initialization (libc's
 * constructors, lunabox-init), the WASI functions are deterministic and
 * call no import: no preopened directory, clocks read 0, random bytes are
 * zeros (wasip1.c). */
extern int lbx_running;
/* Look up the host's preopened directories (once per instance). */
void lbx_ensure_preopens(void);

/* ---- globals.c ---- */

/* Create the protected-globals machinery (_G metatable) and `resources`. */
void lbx_open_globals(lua_State *L);
/* Replace the engine globals with the members of the JSON object text
 * (raises a Lua error on bad JSON or a non-object). */
void lbx_set_globals(lua_State *L, const char *json, size_t len);

/* ---- runfns.c ---- */

/* Register RunBash, RunCommand, RunExpect, RunPowerShell, RunSync and print. */
void lbx_open_runfns(lua_State *L);

/* ---- coverage.c (only for hooks run with the `coverage` option) ---- */

/* Coverage is being recorded for the running hook. */
extern int lbx_cov_on;
/* Start recording for the chunk just loaded (the Lua function on top of the
 * stack; `src`/`len` its text): sets the line hook. */
void lbx_cov_begin(lua_State *L, const char *src, size_t len);
/* Note the chunk's current line as the line of a Run call. */
void lbx_cov_note_call(void);
/* Remove the line hook and report through the `coverage` import (also
 * when recording never began: an empty report). */
void lbx_cov_end(lua_State *L);

#endif
