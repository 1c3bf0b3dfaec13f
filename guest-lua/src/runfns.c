/*
 * runfns.c: the Run functions and `print`, as Lua globals over the imports.
 *
 * RunBash{...}, RunCommand{...}, RunExpect{...}, RunPowerShell{...},
 * RunSync{...}: the one table argument is encoded as JSON and passed to the
 * `run` import. Outcomes:
 *   ok(some(json))  -> the decoded value is returned
 *   ok(none)        -> nothing is returned
 *   err(bad-call | bad-output | unavailable) -> a string error with the
 *                      caller's position ("chunk:12: ...")
 *   err(exit)       -> an error TABLE {exitCode, stdout, stderr, message}
 *                      whose metatable (LBX_RUN_FAILURE_MT) has __tostring
 *                      returning `message`; pcall can catch and inspect it,
 *                      and runner.c reports it as `run-failed` if uncaught.
 * print(...) -> the `log` import at level info (tostring'ed, tab-separated).
 * warn(...)  -> the `log` import at level warn, once a hook turned warnings
 *               on with warn("@on") (off by default, as in Lua).
 */
#include <stdlib.h>
#include <string.h>

#include "hook.h"
#include "lauxlib.h"
#include "lunabox.h"

static const char *const fn_names[] = {"RunBash", "RunCommand", "RunExpect",
                                       "RunPowerShell", "RunSync"};
static const lunabox_hook_host_run_function_t fn_ids[] = {
    LUNABOX_HOOK_HOST_RUN_FUNCTION_RUN_BASH,
    LUNABOX_HOOK_HOST_RUN_FUNCTION_RUN_COMMAND,
    LUNABOX_HOOK_HOST_RUN_FUNCTION_RUN_EXPECT,
    LUNABOX_HOOK_HOST_RUN_FUNCTION_RUN_POWER_SHELL,
    LUNABOX_HOOK_HOST_RUN_FUNCTION_RUN_SYNC};

static void push_hs(lua_State *L, const hook_string_t *s) {
  lua_pushlstring(L, (const char *)s->ptr, s->len);
}

/* The largest call table (JSON bytes) of the running hook (see lunabox.h). */
size_t lbx_max_call_bytes = 16 * 1024 * 1024;

/* (table, buf, root): encode the call table within the call limit. */
static int encode_call(lua_State *L) {
  lbx_buf *b = lua_touserdata(L, 2);
  lbx_json_encode(L, 1, b, lua_tostring(L, 3), lbx_max_call_bytes, 0);
  return 0;
}

/* upvalue 1: index into fn_names/fn_ids */
static int run_fn(lua_State *L) {
  int which = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *name = fn_names[which];
  if (lua_gettop(L) != 1 || !lua_istable(L, 1)) {
    const char *got = lua_gettop(L) == 0 ? "no argument"
                                           : luaL_typename(L, 1);
    if (lua_gettop(L) > 1 && lua_istable(L, 1))
      got = "more than one argument";
    return luaL_error(L,
                      "%s expects one table argument, e.g. %s{ command = "
                      "\"...\" } (got %s)",
                      name, name, got);
  }
  lua_settop(L, 1);

  /* Encode the call table (errors name the caller's position, then the
   * path of the offending value). */
  lbx_buf *b = lbx_buf_new(L); /* index 2 */
  lua_pushcfunction(L, encode_call);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  luaL_where(L, 1);
  lua_pushfstring(L, "%s{...}", name);
  lua_concat(L, 2);
  int status = lua_pcall(L, 3, 0, 0);
  if (status == LUA_ERRMEM)
    return lua_error(L); /* keeps the memory error's value */
  if (status != LUA_OK) {
    if (lua_touserdata(L, -1) == (void *)&lbx_too_large)
      return luaL_error(L,
                        "%s: the call table is larger than %d bytes as JSON, "
                        "the most a Run call may pass; pass large data in a "
                        "file or a resource instead",
                        name, (int)lbx_max_call_bytes);
    return lua_error(L);
  }

  hook_string_t call = {(uint8_t *)b->data, b->len};
  if (call.ptr == NULL)
    call.ptr = (uint8_t *)"";
  hook_option_string_t ok = {0};
  lunabox_hook_host_run_failure_t err;
  memset(&err, 0, sizeof err);
  if (lbx_cov_on)
    lbx_cov_note_call();
  int success = lunabox_hook_host_run(fn_ids[which], &call, &ok, &err);

  if (success) {
    if (!ok.is_some)
      return 0;
    /* Copy the text into Lua first so that a decode error leaks nothing. */
    push_hs(L, &ok.val);
    hook_string_free(&ok.val);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    lua_pushfstring(L, "%s: the host returned invalid JSON", name);
    lbx_json_decode(L, s, n, lua_tostring(L, -1));
    return 1;
  }

  luaL_where(L, 1); /* "chunk:line: " */
  int where = lua_gettop(L);
  if (err.tag == LUNABOX_HOOK_HOST_RUN_FAILURE_EXIT) {
    lunabox_hook_host_exit_failure_t *x = &err.val.exit;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, x->exit_code);
    lua_setfield(L, -2, "exitCode");
    push_hs(L, &x->stdout_);
    lua_setfield(L, -2, "stdout");
    push_hs(L, &x->stderr_);
    lua_setfield(L, -2, "stderr");
    lua_pushvalue(L, where);
    push_hs(L, &x->message);
    lua_concat(L, 2);
    lua_setfield(L, -2, "message");
    lunabox_hook_host_run_failure_free(&err);
    luaL_setmetatable(L, LBX_RUN_FAILURE_MT);
    return lua_error(L);
  }
  const hook_string_t *msg;
  switch (err.tag) {
  case LUNABOX_HOOK_HOST_RUN_FAILURE_BAD_CALL:
    msg = &err.val.bad_call;
    break;
  case LUNABOX_HOOK_HOST_RUN_FAILURE_BAD_OUTPUT:
    msg = &err.val.bad_output;
    break;
  default:
    msg = &err.val.unavailable;
    break;
  }
  push_hs(L, msg);
  lunabox_hook_host_run_failure_free(&err);
  lua_concat(L, 2);
  return lua_error(L);
}

static int failure_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, 1, "message") != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_getfield(L, 1, "exitCode");
    lua_pushfstring(L, "command failed with exit code %d",
                    (int)lua_tointeger(L, -1));
  }
  return 1;
}

static void log_text(lunabox_hook_host_log_level_t level, const char *s,
                     size_t len);

/* print(...): to the hook's log at info. */
static int lbx_print(lua_State *L) {
  int n = lua_gettop(L);
  luaL_Buffer B;
  luaL_buffinit(L, &B);
  for (int i = 1; i <= n; i++) {
    if (i > 1)
      luaL_addchar(&B, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&B);
  }
  luaL_pushresult(&B);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  log_text(LUNABOX_HOOK_HOST_LOG_LEVEL_INFO, s, len);
  return 0;
}

/* Send `len` bytes to the log import at `level`, as valid UTF-8. */
static void log_text(lunabox_hook_host_log_level_t level, const char *s,
                     size_t len) {
  size_t out_len;
  char *clean = lbx_utf8_sanitize(s, len, &out_len);
  if (clean == NULL)
    return; /* out of memory: drop the line */
  hook_string_t msg = {(uint8_t *)clean, out_len};
  lunabox_hook_host_log(level, &msg);
  free(clean);
}

/* Lua's warning function: pieces of one message arrive with tocont set on
 * all but the last. Lines longer than the buffer are cut. */
static struct {
  int on;
  size_t len;
  char text[1024];
} warn_state;

static void lbx_warnf(void *ud, const char *msg, int tocont) {
  (void)ud;
  if (warn_state.len == 0 && !tocont && msg[0] == '@') {
    if (strcmp(msg, "@on") == 0)
      warn_state.on = 1;
    else if (strcmp(msg, "@off") == 0)
      warn_state.on = 0;
    return;
  }
  size_t n = strlen(msg);
  size_t room = sizeof warn_state.text - warn_state.len;
  if (n > room)
    n = room;
  memcpy(warn_state.text + warn_state.len, msg, n);
  warn_state.len += n;
  if (tocont)
    return;
  if (warn_state.on)
    log_text(LUNABOX_HOOK_HOST_LOG_LEVEL_WARN, warn_state.text,
             warn_state.len);
  warn_state.len = 0;
}

void lbx_open_runfns(lua_State *L) {
  lua_setwarnf(L, lbx_warnf, NULL);
  for (int i = 0; i < (int)(sizeof fn_names / sizeof fn_names[0]); i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, run_fn, 1);
    lua_setglobal(L, fn_names[i]);
  }
  luaL_newmetatable(L, LBX_RUN_FAILURE_MT);
  lua_pushcfunction(L, failure_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, lbx_print);
  lua_setglobal(L, "print");
}
