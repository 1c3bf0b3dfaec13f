/*
 * runner.c: the guest's entry points.
 *
 *   lunabox-init (export, run once by Wizer at build time): create the Lua
 *       state, open the sandboxed libraries, engine-global machinery, Run
 *       functions. All of it is in the pre-initialized snapshot.
 *   runner.run-hook (the component export): per hook only the engine
 *       globals, the math.random reseed and the chunk itself run.
 *
 * Outcome of run-hook: ok(JSON of the first returned value, `null` if none)
 * or a hook-error whose kind is syntax, runtime, run-failed (an uncaught Run
 * exit failure), bad-result, result-too-large or memory.
 *
 * Everything returned crosses the component boundary as a `string`, so it
 * is made valid UTF-8 and allocated with malloc (the generated post-return
 * frees it). Files: WASI preopens are looked up on the first run-hook (not
 * at init, which would freeze the build machine's view into the snapshot).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wasi/api.h>
#include <wasi/libc.h>

#include "hook.h"
#include "lauxlib.h"
#include "ldo.h" /* luaD_throw: pass a memory error on as LUA_ERRMEM */
#include "lunabox.h"

typedef exports_lunabox_hook_runner_hook_error_t hook_error_t;
typedef exports_lunabox_hook_runner_hook_options_t hook_options_t;

#define KIND_SYNTAX EXPORTS_LUNABOX_HOOK_RUNNER_ERROR_KIND_SYNTAX
#define KIND_RUNTIME EXPORTS_LUNABOX_HOOK_RUNNER_ERROR_KIND_RUNTIME
#define KIND_RUN_FAILED EXPORTS_LUNABOX_HOOK_RUNNER_ERROR_KIND_RUN_FAILED
#define KIND_BAD_RESULT EXPORTS_LUNABOX_HOOK_RUNNER_ERROR_KIND_BAD_RESULT
#define KIND_TOO_LARGE EXPORTS_LUNABOX_HOOK_RUNNER_ERROR_KIND_RESULT_TOO_LARGE
#define KIND_MEMORY EXPORTS_LUNABOX_HOOK_RUNNER_ERROR_KIND_MEMORY

/* Kept free so that a hook that ran out of memory can still be reported. */
#define RESERVE_BYTES (64 * 1024)

/* Free heap made at init, so that the snapshot's memory already holds what
 * a typical hook allocates. A hook that grows its linear memory costs the
 * host two mprotect calls (the growth, and the shrink back when the next
 * hook takes the pooled slot), each a TLB flush on every core running the
 * process: 15% of a fuzzing run's time before this. The pages stay zero
 * until used, so they add nothing to the snapshot or to resident memory. */
#define HEADROOM_BYTES (512 * 1024)

static lua_State *gL;
static void *reserve;
static int preopens_found;

/* ---------------------------------------------------------------------- */
/* Initialization                                                          */
/* ---------------------------------------------------------------------- */

static int init_state(lua_State *L) {
  luaL_newmetatable(L, LBX_EMPTY_ARRAY_MT);
  lua_pop(L, 1);
  lbx_open_sandbox(L);
  lbx_open_runfns(L);
  lbx_open_globals(L); /* last: it protects _G */
  return 0;
}

__attribute__((export_name("lunabox-init"))) void lunabox_init(void) {
  if (gL != NULL)
    return;
  lua_State *L = luaL_newstate();
  if (L == NULL)
    abort();
  lua_pushcfunction(L, init_state);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK)
    abort();
  lua_gc(L, LUA_GCCOLLECT);
  /* dlmalloc never gives memory back to wasm, so the freed block stays
   * free heap, in the top chunk. (Through a volatile pointer: the compiler
   * would drop a malloc that is only freed.) */
  void *volatile headroom = malloc(HEADROOM_BYTES);
  free(headroom);
  reserve = malloc(RESERVE_BYTES);
  gL = L;
}

/* Register the directories the host preopened for this instance. Called
 * lazily, before the first file operation (see sandbox.c): asking the host
 * for its preopens costs more than a whole trivial hook. */
void lbx_ensure_preopens(void) {
  if (preopens_found)
    return;
  preopens_found = 1;
  for (__wasi_fd_t fd = 3; fd < 1024; fd++) {
    __wasi_prestat_t ps;
    if (__wasi_fd_prestat_get(fd, &ps) != __WASI_ERRNO_SUCCESS)
      break;
    if (ps.tag != __WASI_PREOPENTYPE_DIR)
      continue;
    size_t n = ps.u.dir.pr_name_len;
    char *name = malloc(n + 1);
    if (name == NULL)
      break;
    if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, n) !=
        __WASI_ERRNO_SUCCESS) {
      free(name);
      break;
    }
    name[n] = '\0';
    __wasilibc_register_preopened_fd((int)fd, name);
    free(name);
  }
}

/* ---------------------------------------------------------------------- */
/* Output helpers                                                          */
/* ---------------------------------------------------------------------- */

/* A malloc'ed, valid UTF-8 copy for the component boundary. */
static void out_string(hook_string_t *out, const char *s, size_t n) {
  size_t len = 0;
  char *p = lbx_utf8_sanitize(s, n, &len);
  if (p == NULL) {
    /* Out of memory even after the reserve was released: give up on the
     * text rather than trap. */
    p = malloc(1);
    len = 0;
    if (p == NULL)
      abort();
  }
  out->ptr = (uint8_t *)p;
  out->len = len;
}

static void out_cstring(hook_string_t *out, const char *s) {
  out_string(out, s, strlen(s));
}

/* The longest message (and traceback) of the running hook. */
static size_t max_message_bytes = 64 * 1024;

/* out_string for a message or traceback: cut to max_message_bytes (at
 * least 128), saying so; a character broken by the cut becomes U+FFFD. */
static void out_message(hook_string_t *out, const char *s, size_t n) {
  size_t max = max_message_bytes < 128 ? 128 : max_message_bytes;
  if (n <= max) {
    out_string(out, s, n);
    return;
  }
  char note[96];
  int k = snprintf(note, sizeof note, "... (cut: %zu bytes in all)", n);
  size_t head = max - (size_t)k;
  char *tmp = malloc(max);
  if (tmp == NULL) {
    out_string(out, s, head);
    return;
  }
  memcpy(tmp, s, head);
  memcpy(tmp + head, note, (size_t)k);
  out_string(out, tmp, max);
  free(tmp);
}

static void set_error(hook_error_t *err, uint8_t kind, const char *msg,
                      size_t len) {
  memset(err, 0, sizeof *err);
  err->kind = kind;
  out_message(&err->message, msg, len);
}

/* ---------------------------------------------------------------------- */
/* The protected body of run-hook                                          */
/* ---------------------------------------------------------------------- */

struct job {
  hook_string_t *script;
  hook_string_t *chunk_name;
  hook_string_t *globals_json;
  hook_options_t *options;
  /* results */
  int done; /* 1: ok (json set) or error (err set) */
  hook_string_t json;
  hook_error_t *err;
};

static int msgh(lua_State *L) {
  luaL_traceback(L, L, NULL, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, LBX_TRACEBACK);
  return 1; /* the error object itself, unchanged */
}

/* Push a readable message for the error object at `idx` (any type). Runs
 * in protected mode: __tostring may run. */
static void push_table_error_message(lua_State *L, int idx);
static void push_error_message(lua_State *L, int idx) {
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
  case LUA_TNUMBER:
    /* A copy, made a string: whole, even with a NUL byte in it. */
    lua_pushvalue(L, idx);
    (void)lua_tolstring(L, -1, NULL);
    return;
  case LUA_TNIL:
    lua_pushliteral(L, "error object is nil (error() called without a "
                       "message)");
    return;
  case LUA_TTABLE:
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
      lua_pop(L, 1);
      luaL_tolstring(L, idx, NULL);
    } else {
      push_table_error_message(L, idx);
    }
    return;
  default:
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
      lua_pop(L, 1);
      luaL_tolstring(L, idx, NULL);
      return;
    }
    lua_pushfstring(L, "error object is a %s value", luaL_typename(L, idx));
    return;
  }
}

/* (error object) -> its message; run protected, since __tostring is the
 * hook's code and may fail. */
static int message_of(lua_State *L) {
  push_error_message(L, 1);
  return 1;
}

static int encode_for_message(lua_State *L) {
  /* (value, buf) */
  lbx_buf *b = lua_touserdata(L, 2);
  lbx_json_encode(L, 1, b, "error", 2000, 0);
  return 0;
}

/* Message for an error object that is a table without __tostring. */
static void push_table_error_message(lua_State *L, int idx) {
  int top = lua_gettop(L);
  lbx_buf *b = lbx_buf_new(L); /* top + 1, stays until the end */
  lua_pushcfunction(L, encode_for_message);
  lua_pushvalue(L, idx);
  lua_pushvalue(L, top + 1);
  if (lua_pcall(L, 2, 0, 0) == LUA_OK) {
    lua_pushliteral(L, "error object is a table: ");
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    lua_concat(L, 2);
  } else {
    lua_pop(L, 1);
    lua_pushliteral(L, "error object is a table (give it a __tostring "
                       "metamethod or raise a string)");
  }
  lua_replace(L, top + 1);
}

static void fill_traceback(lua_State *L, hook_error_t *err) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, LBX_TRACEBACK) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    err->traceback.is_some = true;
    out_message(&err->traceback.val, s, n);
  }
  lua_pop(L, 1);
}

static void fill_run_failure(lua_State *L, int idx, hook_error_t *err) {
  size_t n;
  const char *s;
  err->kind = KIND_RUN_FAILED;
  err->exit.is_some = true;
  lua_getfield(L, idx, "exitCode");
  err->exit.val.exit_code = (int32_t)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, idx, "stdout");
  s = lua_tolstring(L, -1, &n);
  out_string(&err->exit.val.stdout_, s ? s : "", s ? n : 0);
  lua_pop(L, 1);
  lua_getfield(L, idx, "stderr");
  s = lua_tolstring(L, -1, &n);
  out_string(&err->exit.val.stderr_, s ? s : "", s ? n : 0);
  lua_pop(L, 1);
}

static int is_run_failure(lua_State *L, int idx) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx))
    return 0;
  luaL_getmetatable(L, LBX_RUN_FAILURE_MT);
  int yes = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return yes;
}

static int encode_result(lua_State *L) {
  /* (value, buf, limit) */
  lbx_buf *b = lua_touserdata(L, 2);
  size_t limit = (size_t)lua_tointeger(L, 3);
  lbx_json_encode(L, 1, b, "value", limit, 0);
  return 0;
}

static int hook_body(lua_State *L) {
  struct job *job = lua_touserdata(L, 1);
  lua_settop(L, 0);

  /* Engine globals and a fresh math.random seed. */
  lua_getfield(L, LUA_REGISTRYINDEX, "lunabox.randomseed");
  lua_pushinteger(L, (lua_Integer)job->options->random_seed);
  lua_call(L, 1, 0);
  lbx_set_globals(L, (const char *)job->globals_json->ptr,
                  job->globals_json->len);

  /* Compile. A first line starting with '#' is skipped but its newline is
   * kept, so line numbers stay right. */
  const char *src = (const char *)job->script->ptr;
  size_t len = job->script->len;
  if (len > 0 && src[0] == '#') {
    const char *nl = memchr(src, '\n', len);
    size_t skip = nl ? (size_t)(nl - src) : len;
    src += skip;
    len -= skip;
  }
  lua_pushliteral(L, "=");
  lua_pushlstring(L, (const char *)job->chunk_name->ptr,
                  job->chunk_name->len);
  lua_concat(L, 2);
  const char *chunkname = lua_tostring(L, -1);
  int status = luaL_loadbufferx(L, src, len, chunkname, "t");
  lua_remove(L, -2); /* chunk name */
  if (status == LUA_ERRMEM)
    luaD_throw(L, LUA_ERRMEM);
  if (status != LUA_OK) {
    size_t n;
    const char *m = lua_tolstring(L, -1, &n);
    if (m == NULL) {
      m = "syntax error";
      n = strlen(m);
    }
    set_error(job->err, KIND_SYNTAX, m, n);
    job->done = -1;
    return 0;
  }
  if (job->options->compile_only) {
    out_cstring(&job->json, "null");
    job->done = 1;
    return 0;
  }

  /* Run. */
  if (job->options->coverage)
    lbx_cov_begin(L, src, len);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LBX_TRACEBACK);
  lua_pushcfunction(L, msgh);
  lua_insert(L, -2);
  int base = lua_gettop(L) - 1; /* msgh */
  status = lua_pcall(L, 0, LUA_MULTRET, base);
  if (status == LUA_ERRMEM)
    luaD_throw(L, LUA_ERRMEM);
  if (status != LUA_OK) {
    int e = lua_gettop(L);
    memset(job->err, 0, sizeof *job->err);
    if (is_run_failure(L, e))
      fill_run_failure(L, e, job->err);
    else
      job->err->kind = KIND_RUNTIME;
    lua_pushcfunction(L, message_of);
    lua_pushvalue(L, e);
    int ms = lua_pcall(L, 1, 1, 0);
    if (ms == LUA_ERRMEM)
      luaD_throw(L, LUA_ERRMEM);
    if (ms != LUA_OK) {
      /* The hook's __tostring failed: say so, with its own error. */
      const char *why = lua_type(L, -1) == LUA_TSTRING
                            ? lua_tostring(L, -1)
                            : luaL_typename(L, -1);
      lua_pushfstring(L,
                      "the hook raised an error whose __tostring metamethod "
                      "failed (%s); raise a string, or fix __tostring",
                      why);
      lua_remove(L, -2);
    }
    size_t n;
    const char *m = lua_tolstring(L, -1, &n);
    out_message(&job->err->message, m ? m : "", m ? n : 0);
    fill_traceback(L, job->err);
    job->done = -1;
    return 0;
  }

  /* The first returned value as JSON. */
  if (lua_gettop(L) == base) {
    out_cstring(&job->json, "null");
    job->done = 1;
    return 0;
  }
  lbx_buf *b = lbx_buf_new(L); /* stays on the stack */
  int b_idx = lua_gettop(L);
  lua_pushcfunction(L, encode_result);
  lua_pushvalue(L, base + 1);
  lua_pushvalue(L, b_idx);
  lua_pushinteger(L, (lua_Integer)job->options->max_result_bytes);
  status = lua_pcall(L, 3, 0, 0);
  if (status == LUA_ERRMEM)
    luaD_throw(L, LUA_ERRMEM);
  if (status != LUA_OK) {
    if (lua_touserdata(L, -1) == (void *)&lbx_too_large) {
      lua_pushfstring(L,
                      "the hook's result is larger than the limit of %d "
                      "bytes of JSON",
                      (int)job->options->max_result_bytes);
      size_t n;
      const char *m = lua_tolstring(L, -1, &n);
      set_error(job->err, KIND_TOO_LARGE, m, n);
    } else {
      lua_pushliteral(L, "the hook returned a value that cannot be "
                         "converted to JSON: ");
      lua_pushvalue(L, -2);
      lua_concat(L, 2);
      size_t n;
      const char *m = lua_tolstring(L, -1, &n);
      set_error(job->err, KIND_BAD_RESULT, m, n);
    }
    job->done = -1;
    return 0;
  }
  size_t n;
  char *text = lbx_buf_steal(b, &n);
  if (text == NULL)
    luaD_throw(L, LUA_ERRMEM);
  job->json.ptr = (uint8_t *)text;
  job->json.len = n;
  job->done = 1;
  return 0;
}

bool exports_lunabox_hook_runner_run_hook(hook_string_t *script,
                                          hook_string_t *chunk_name,
                                          hook_string_t *globals_json,
                                          hook_options_t *options,
                                          hook_string_t *ret,
                                          hook_error_t *err) {
  if (gL == NULL)
    lunabox_init(); /* not pre-initialized (development builds) */
  lbx_running = 1;
  /* The host's limits for this hook (a 0 never comes from the host; the
   * depth is never above what the encoder's arrays hold). */
  lbx_json_max_depth = options->max_depth == 0 || options->max_depth >
                                                       LBX_JSON_DEPTH_CEIL
                           ? LBX_JSON_DEPTH_CEIL
                           : (int)options->max_depth;
  lbx_max_call_bytes = options->max_call_bytes;
  max_message_bytes = options->max_message_bytes;

  lua_State *L = gL;
  struct job job;
  memset(&job, 0, sizeof job);
  job.script = script;
  job.chunk_name = chunk_name;
  job.globals_json = globals_json;
  job.options = options;
  job.err = err;
  memset(err, 0, sizeof *err);

  lua_settop(L, 0);
  lua_pushcfunction(L, hook_body);
  lua_pushlightuserdata(L, &job);
  int status = lua_pcall(L, 1, 0, 0);

  if (options->coverage)
    lbx_cov_end(L);
  hook_string_free(script);
  hook_string_free(chunk_name);
  hook_string_free(globals_json);

  if (status != LUA_OK && job.done == 0) {
    /* Failed outside the hook's own pcall: engine globals, or memory. */
    const char *m = lua_tostring(L, -1);
    if (status == LUA_ERRMEM) {
      free(reserve);
      reserve = NULL;
      lua_settop(L, 0);
      lua_gc(L, LUA_GCCOLLECT);
      set_error(err, KIND_MEMORY, "not enough memory",
                strlen("not enough memory"));
    } else if (m != NULL) {
      set_error(err, KIND_RUNTIME, m, strlen(m));
    } else {
      const char *why = "the hook could not be started (an error without a "
                        "message outside the script); this is a lunabox bug, "
                        "please report it";
      set_error(err, KIND_RUNTIME, why, strlen(why));
    }
    lua_settop(L, 0);
    return false;
  }
  lua_settop(L, 0);
  if (job.done > 0) {
    *ret = job.json;
    return true;
  }
  return false;
}
