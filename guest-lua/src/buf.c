/*
 * buf.c: a growable byte buffer kept in a Lua userdata (freed by its __gc, so
 * Lua errors while building JSON leak nothing) and small UTF-8 helpers.
 */
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "ldo.h" /* luaD_throw: raise a real memory error (LUA_ERRMEM) */
#include "lunabox.h"

#define BUF_MT "lunabox.buf"

static int buf_gc(lua_State *L) {
  lbx_buf *b = luaL_checkudata(L, 1, BUF_MT);
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  return 0;
}

lbx_buf *lbx_buf_new(lua_State *L) {
  lbx_buf *b = lua_newuserdatauv(L, sizeof(lbx_buf), 0);
  b->data = NULL;
  b->len = b->cap = 0;
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

void lbx_buf_reserve(lua_State *L, lbx_buf *b, size_t n) {
  if (b->cap - b->len > n)
    return; /* keep one byte spare for a terminating NUL */
  size_t need = b->len + n + 1;
  if (need < b->len) /* overflow */
    luaL_error(L, "buffer too large");
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > ((size_t)-1) / 2) {
      cap = need;
      break;
    }
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (p == NULL)
    luaD_throw(L, LUA_ERRMEM);
  b->data = p;
  b->cap = cap;
}

void lbx_buf_add(lua_State *L, lbx_buf *b, const char *s, size_t n) {
  lbx_buf_reserve(L, b, n);
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

void lbx_buf_addc(lua_State *L, lbx_buf *b, char c) {
  lbx_buf_reserve(L, b, 1);
  b->data[b->len++] = c;
}

void lbx_buf_adds(lua_State *L, lbx_buf *b, const char *s) {
  lbx_buf_add(L, b, s, strlen(s));
}

char *lbx_buf_steal(lbx_buf *b, size_t *len) {
  char *p = b->data;
  if (p == NULL) {
    p = malloc(1);
    if (p == NULL)
      return NULL;
  }
  p[b->len] = '\0';
  *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

size_t lbx_utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned min;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    min = 0x80;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    min = 0x800;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    min = 0x10000;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

char *lbx_utf8_sanitize(const char *s, size_t n, size_t *out_len) {
  /* Worst case every byte becomes the 3-byte U+FFFD. */
  if (n > ((size_t)-1 - 1) / 3)
    return NULL;
  char *out = malloc(n * 3 + 1);
  if (out == NULL)
    return NULL;
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t k = lbx_utf8_seq(u + i, n - i);
    if (k == 0) {
      out[o++] = (char)0xEF;
      out[o++] = (char)0xBF;
      out[o++] = (char)0xBD;
      i++;
    } else {
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    }
  }
  out[o] = '\0';
  *out_len = o;
  return out;
}
