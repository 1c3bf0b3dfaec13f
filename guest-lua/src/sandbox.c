/*
 * sandbox.c: the standard libraries a hook gets (toolkit-format.md sec. 6).
 *
 * Opened: base, string, table, math, utf8, coroutine, and cut-down os, io and
 * debug. Rules applied here (once, at pre-initialization):
 *   - text chunks only: `load` (and its alias `loadstring`) always uses mode
 *     "t", so a binary chunk is an error; `string.dump` is gone;
 *   - `unpack` = table.unpack; no dofile, loadfile, require, package;
 *   - os: only time, clock, date, difftime (os.clock counts seconds since
 *     the hook started on the monotonic clock: WASI has no CPU clock);
 *   - io: all of it but popen and tmpfile; files resolve inside the hook's
 *     scratch directory, the only directory the host preopens (as "/");
 *   - debug: only debug.traceback.
 */
#include <time.h>

#include "lauxlib.h"
#include "lualib.h"
#include "lunabox.h"

static struct timespec hook_start;

void lbx_clock_reset(void) { clock_gettime(CLOCK_MONOTONIC, &hook_start); }

static int os_clock(lua_State *L) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double s = (double)(now.tv_sec - hook_start.tv_sec) +
             (double)(now.tv_nsec - hook_start.tv_nsec) / 1e9;
  lua_pushnumber(L, (lua_Number)s);
  return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t". The
 * number of arguments is kept: load(s, n, m, nil) differs from load(s). */
static int text_load(lua_State *L) {
  int n = lua_gettop(L);
  lua_settop(L, 4); /* absent arguments read as nil below */
  lua_pushvalue(L, lua_upvalueindex(1)); /* the original load */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "t");
  int nargs = 3;
  if (n >= 4) {
    lua_pushvalue(L, 4);
    nargs = 4;
  }
  int base = lua_gettop(L) - nargs - 1;
  lua_call(L, nargs, LUA_MULTRET);
  return lua_gettop(L) - base;
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
  lua_getglobal(L, "load");
  lua_pushcclosure(L, text_load, 1);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "load");
  lua_setglobal(L, "loadstring");
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
  lua_pushnil(L);
  lua_setfield(L, -2, "popen");
  lua_pushnil(L);
  lua_setfield(L, -2, "tmpfile");
  lua_pop(L, 1);

  static const char *const debug_keep[] = {"traceback", NULL};
  lua_getglobal(L, LUA_DBLIBNAME);
  keep_only(L, debug_keep);
  lua_setglobal(L, LUA_DBLIBNAME);

  /* The loaded-modules table still holds the full os/debug tables; nothing
   * a hook can reach uses it (no require), so drop it. */
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
}
