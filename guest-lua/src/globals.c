/*
 * globals.c: the engine's globals, read-only to the hook, and `resources`.
 *
 * Engine globals (each top-level key of the run-hook globals JSON, plus
 * `resources`, plus `sourceConfig` as an alias of `config`) are kept in a
 * hidden table P, not in _G itself. _G gets a protected metatable:
 *   __index    = P                 reads find them;
 *   __newindex = guard             assigning one raises "`name` is provided
 *                                  by the engine and is read-only", any
 *                                  other new global is stored in _G as usual;
 *   __metatable = false            the hook cannot see or replace this.
 * The values themselves stay ordinary, mutable tables (upgrade hooks change
 * `parameters` and return it).
 *
 * `resources` is a read-only, table-like object: indexing it fetches the
 * text of a resource through the `read-resource` import on first use
 * (cached); `pairs(resources)` walks `list-resources` in order.
 */
#include <stdlib.h>
#include <string.h>

#include "hook.h"
#include "lauxlib.h"
#include "lunabox.h"

/* ---- read-only globals ---- */

static int guard_newindex(lua_State *L) {
  /* (t, k, v) */
  lua_getfield(L, LUA_REGISTRYINDEX, LBX_PROTECTED);
  lua_pushvalue(L, 2);
  int is_engine = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  if (is_engine) {
    if (lua_type(L, 2) == LUA_TSTRING)
      return luaL_error(L,
                        "`%s` is provided by the engine and is read-only",
                        lua_tostring(L, 2));
    return luaL_error(L, "engine globals are read-only");
  }
  lua_rawset(L, 1);
  return 0;
}

/* Make P (at the top, popped) the engine globals. */
static void install_protected(lua_State *L) {
  int p = lua_gettop(L);
  lua_pushvalue(L, p);
  lua_setfield(L, LUA_REGISTRYINDEX, LBX_PROTECTED);
  lua_pushglobaltable(L);
  /* Keep them out of the raw table so every assignment reaches the guard. */
  lua_pushnil(L);
  while (lua_next(L, p)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, -4);
  }
  lua_getmetatable(L, -1);
  lua_pushvalue(L, p);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 3); /* metatable, _G, P */
}

/* ---- resources ---- */

static int push_hook_string(lua_State *L, hook_string_t *s) {
  lua_pushlstring(L, (const char *)s->ptr, s->len);
  return 1;
}

/* upvalue 1: cache (name -> text, or false when the host has none) */
static int res_index(lua_State *L) {
  if (lua_type(L, 2) != LUA_TSTRING)
    return 0;
  lua_pushvalue(L, 2);
  int t = lua_rawget(L, lua_upvalueindex(1));
  if (t == LUA_TSTRING)
    return 1;
  if (t == LUA_TBOOLEAN)
    return 0; /* known to be missing */
  lua_pop(L, 1);
  size_t n;
  const char *name = lua_tolstring(L, 2, &n);
  size_t ok = 0;
  for (size_t i = 0; i < n; i += ok) {
    ok = lbx_utf8_seq((const unsigned char *)name + i, n - i);
    if (ok == 0)
      return 0; /* not a valid name: no such resource */
  }
  luaL_checkstack(L, 4, "resources");
  hook_string_t arg = {(uint8_t *)name, n};
  hook_string_t text = {NULL, 0};
  lua_pushvalue(L, 2);
  if (lunabox_hook_host_read_resource(&arg, &text)) {
    /* Copy to Lua, then free; a memory error while copying leaks only this
     * one host string. */
    push_hook_string(L, &text);
    hook_string_free(&text);
    lua_pushvalue(L, -1);
    lua_insert(L, -3); /* result, key, text */
    lua_rawset(L, lua_upvalueindex(1));
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_rawset(L, lua_upvalueindex(1));
  return 0;
}

static int res_newindex(lua_State *L) {
  return luaL_error(L, "`resources` is provided by the engine and is "
                       "read-only");
}

static int res_tostring(lua_State *L) {
  lua_pushliteral(L, "resources");
  return 1;
}

/* The names, fetched once: upvalue 2 of __pairs is a table {names...}. */
static void push_names(lua_State *L, int holder) {
  if (lua_rawgeti(L, holder, 1) == LUA_TTABLE)
    return;
  lua_pop(L, 1);
  hook_list_string_t list = {NULL, 0};
  lunabox_hook_host_list_resources(&list);
  lua_createtable(L, (int)(list.len > 0x7fffffff ? 0 : list.len), 0);
  for (size_t i = 0; i < list.len; i++) {
    push_hook_string(L, &list.ptr[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  hook_list_string_free(&list);
  lua_pushvalue(L, -1);
  lua_rawseti(L, holder, 1);
}

/* iterator closure; upvalues: names table, position */
static int res_next(lua_State *L) {
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(2)) + 1;
  lua_pushinteger(L, i);
  lua_replace(L, lua_upvalueindex(2));
  if (lua_rawgeti(L, lua_upvalueindex(1), i) == LUA_TNIL)
    return 1;
  lua_pushvalue(L, -1);
  lua_gettable(L, 1); /* fetch through __index */
  return 2;
}

/* __pairs; upvalue 1: holder table for the cached name list */
static int res_pairs(lua_State *L) {
  push_names(L, lua_upvalueindex(1));
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, res_next, 2);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

static void new_resources(lua_State *L) {
  lua_newtable(L); /* the (always empty) proxy */
  lua_createtable(L, 0, 6);
  lua_newtable(L); /* cache */
  lua_pushcclosure(L, res_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, res_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_newtable(L); /* holder for the name list */
  lua_pushcclosure(L, res_pairs, 1);
  lua_setfield(L, -2, "__pairs");
  lua_pushcfunction(L, res_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
}

/* ---- setup ---- */

void lbx_open_globals(lua_State *L) {
  new_resources(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LBX_RESOURCES);

  lua_pushglobaltable(L);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, guard_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pop(L, 1);

  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LBX_RESOURCES);
  lua_setfield(L, -2, "resources");
  install_protected(L);
}

void lbx_set_globals(lua_State *L, const char *json, size_t len) {
  lbx_json_decode(L, json, len, "globals-json");
  if (!lua_istable(L, -1))
    luaL_error(L, "globals-json: expected a JSON object, got %s",
               luaL_typename(L, -1));
  int g = lua_gettop(L);
  lua_newtable(L);
  int p = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, g)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "globals-json: expected a JSON object, got an array");
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, p);
  }
  /* `sourceConfig` is the old name of `config`. */
  if (lua_getfield(L, p, "sourceConfig") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_getfield(L, p, "config");
    lua_setfield(L, p, "sourceConfig");
  } else {
    lua_pop(L, 1);
  }
  /* The host's `resources` import always wins over a JSON key. */
  lua_getfield(L, LUA_REGISTRYINDEX, LBX_RESOURCES);
  lua_setfield(L, p, "resources");
  install_protected(L);
  lua_pop(L, 1); /* decoded object */
}
