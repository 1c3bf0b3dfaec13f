/*
 * sandbox.c: the standard libraries a hook gets (toolkit-format.md sec. 6).
 *
 * Opened: base, string, table, math, utf8, coroutine, and cut-down os, io and
 * debug. Rules applied here (once, at pre-initialization):
 *   - text chunks only: `load` (and its alias `loadstring`) always uses mode
 *     "t", so a binary chunk is an error; `string.dump` is gone;
 *   - `unpack` = table.unpack; no dofile, loadfile, require, package;
 *   - os: only time, clock, date, difftime (os.clock reads the monotonic
 *     clock, which the host starts at zero for each hook: WASI has no CPU
 *     clock);
 *   - io: all of it but popen and tmpfile; files resolve inside the hook's
 *     scratch directory, the only directory the host preopens (as "/"); the
 *     preopens are looked up on the first io call that names a file.
 *   - debug: only debug.traceback.
 */
#include <time.h>

#include "lauxlib.h"
#include "lualib.h"
#include "lunabox.h"

static int os_clock(lua_State *L) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
  lua_pushnumber(L, (lua_Number)s);
  return 1;
}

/* The library functions replaced below, called directly (not through
 * lua_call) so that they run as the replacement itself: argument errors
 * then name `load`/`open` and carry the caller's position, as natively. */
static lua_CFunction orig_load, orig_open, orig_lines, orig_input,
    orig_output;

/* load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t". The
 * number of arguments is kept: load(s, n, m, nil) differs from load(s). */
static int text_load(lua_State *L) {
  if (lua_gettop(L) < 3)
    lua_settop(L, 3);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  return orig_load(L);
}

/* io.open/lines/input/output: find the preopened scratch directory first. */
static int io_open_scratch(lua_State *L) {
  lbx_ensure_preopens();
  return orig_open(L);
}
static int io_lines_scratch(lua_State *L) {
  lbx_ensure_preopens();
  return orig_lines(L);
}
static int io_input_scratch(lua_State *L) {
  lbx_ensure_preopens();
  return orig_input(L);
}
static int io_output_scratch(lua_State *L) {
  lbx_ensure_preopens();
  return orig_output(L);
}

/* Replace field `name` of the table at the top by `fn`, keeping the
 * original C function in `*orig`. */
static void replace_cfunction(lua_State *L, const char *name,
                              lua_CFunction *orig, lua_CFunction fn) {
  lua_getfield(L, -1, name);
  *orig = lua_tocfunction(L, -1);
  lua_pop(L, 1);
  lua_pushcfunction(L, fn);
  lua_setfield(L, -2, name);
}

/* Keep only the fields `keep` of the table at the top (which is replaced by
 * a fresh table holding them). */
static void keep_only(lua_State *L, const char *const *keep) {
  int src = lua_gettop(L);
  lua_newtable(L);
  for (; *keep; keep++) {
    lua_getfield(L, src, *keep);
    lua_setfield(L, -2, *keep);
  }
  lua_remove(L, src);
}

static void set_global_nil(lua_State *L, const char *name) {
  lua_pushnil(L);
  lua_setglobal(L, name);
}

void lbx_open_sandbox(lua_State *L) {
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},         {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8},   {LUA_COLIBNAME, luaopen_coroutine},
      {LUA_OSLIBNAME, luaopen_os},       {LUA_IOLIBNAME, luaopen_io},
      {LUA_DBLIBNAME, luaopen_debug},    {NULL, NULL}};
  for (const luaL_Reg *lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }

  /* Text-only load, and the 5.1 names. */
  lua_pushglobaltable(L);
  replace_cfunction(L, "load", &orig_load, text_load);
  lua_getfield(L, -1, "load");
  lua_setglobal(L, "loadstring");
  lua_pop(L, 1);
  lua_getglobal(L, LUA_TABLIBNAME);
  lua_getfield(L, -1, "unpack");
  lua_setglobal(L, "unpack");
  lua_pop(L, 1);
  set_global_nil(L, "dofile");
  set_global_nil(L, "loadfile");
  set_global_nil(L, "require");
  set_global_nil(L, "package");

  /* No string.dump (also reachable as ("").dump: same table). */
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);

  /* math.randomseed is called by the runner for every hook, even if the
   * hook replaced the global one. */
  lua_getglobal(L, LUA_MATHLIBNAME);
  lua_getfield(L, -1, "randomseed");
  lua_setfield(L, LUA_REGISTRYINDEX, "lunabox.randomseed");
  lua_pop(L, 1);

  static const char *const os_keep[] = {"time", "date", "difftime", NULL};
  lua_getglobal(L, LUA_OSLIBNAME);
  keep_only(L, os_keep);
  lua_pushcfunction(L, os_clock);
  lua_setfield(L, -2, "clock");
  lua_setglobal(L, LUA_OSLIBNAME);

  lua_getglobal(L, LUA_IOLIBNAME);
  replace_cfunction(L, "open", &orig_open, io_open_scratch);
  replace_cfunction(L, "lines", &orig_lines, io_lines_scratch);
  replace_cfunction(L, "input", &orig_input, io_input_scratch);
  replace_cfunction(L, "output", &orig_output, io_output_scratch);
  lua_pushnil(L);
  lua_setfield(L, -2, "popen");
  lua_pushnil(L);
  lua_setfield(L, -2, "tmpfile");
  lua_pop(L, 1);

  static const char *const debug_keep[] = {"traceback", NULL};
  lua_getglobal(L, LUA_DBLIBNAME);
  keep_only(L, debug_keep);
  lua_setglobal(L, LUA_DBLIBNAME);

  /* The loaded-modules table held the full os/debug tables. Nothing a hook
   * can reach reads it (no require), but error messages and tracebacks name
   * library functions through it ("bad argument #1 to 'string.rep'"), so
   * it is rebuilt with only the tables a hook sees. */
  static const char *const visible[] = {
      LUA_GNAME,     LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
      LUA_UTF8LIBNAME, LUA_COLIBNAME, LUA_OSLIBNAME,  LUA_IOLIBNAME,
      LUA_DBLIBNAME, NULL};
  lua_newtable(L);
  for (const char *const *name = visible; *name; name++) {
    lua_getglobal(L, *name);
    lua_setfield(L, -2, *name);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
}
