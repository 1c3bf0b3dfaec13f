/*
 * json.c: JSON text <-> Lua values, written for the guest.
 *
 * Decoding: object -> table, array -> sequence, null -> nil, true/false,
 * numbers without fraction/exponent that fit 64 bits -> Lua integers, other
 * numbers -> floats, strings with every escape including \u surrogate pairs.
 * Nesting is limited to lbx_json_max_depth (the host's limit).
 *
 * Encoding: a table whose keys are exactly 1..n -> array, string keys ->
 * object (keys sorted bytewise, so output is stable), an empty table -> {}
 * (or [] when it came from a JSON `[]`), integers stay integers and floats
 * are always written with '.' or an exponent (2.0 -> "2.0"). NaN/inf,
 * cycles, functions/userdata/threads, mixed or sparse tables, other key
 * types and invalid UTF-8 are errors naming the path of the value.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lauxlib.h"
#include "lunabox.h"

/* ===================================================================== */
/* Decoding                                                               */
/* ===================================================================== */

struct dec {
  lua_State *L;
  const char *start;
  const char *p;
  const char *end;
  const char *what;
  int depth;
};

static _Noreturn void dec_error(struct dec *d, const char *msg) {
  int line = 1, col = 1;
  for (const char *q = d->start; q < d->p && q < d->end; q++) {
    if (*q == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  luaL_error(d->L, "%s: %s at line %d, column %d", d->what, msg, line, col);
  abort(); /* not reached */
}

static void dec_ws(struct dec *d) {
  while (d->p < d->end &&
         (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
    d->p++;
}

static void dec_value(struct dec *d);

static int dec_hex4(struct dec *d, unsigned *out) {
  if (d->end - d->p < 4)
    return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = d->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return 0;
  }
  d->p += 4;
  *out = v;
  return 1;
}

static void add_utf8(luaL_Buffer *B, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  luaL_addlstring(B, u, n);
}

/* d->p is just after the opening quote; pushes the string. */
static void dec_string(struct dec *d) {
  const char *s = d->p;
  /* Fast path: no escapes. */
  while (d->p < d->end && *d->p != '"' && *d->p != '\\' &&
         (unsigned char)*d->p >= 0x20)
    d->p++;
  if (d->p < d->end && *d->p == '"') {
    lua_pushlstring(d->L, s, (size_t)(d->p - s));
    d->p++;
    return;
  }
  luaL_Buffer B;
  luaL_buffinit(d->L, &B);
  luaL_addlstring(&B, s, (size_t)(d->p - s));
  for (;;) {
    if (d->p >= d->end)
      dec_error(d, "unterminated string");
    unsigned char c = (unsigned char)*d->p;
    if (c == '"') {
      d->p++;
      break;
    }
    if (c < 0x20)
      dec_error(d, "control character in string (escape it)");
    if (c != '\\') {
      const char *run = d->p;
      while (d->p < d->end && *d->p != '"' && *d->p != '\\' &&
             (unsigned char)*d->p >= 0x20)
        d->p++;
      luaL_addlstring(&B, run, (size_t)(d->p - run));
      continue;
    }
    d->p++; /* backslash */
    if (d->p >= d->end)
      dec_error(d, "unterminated string");
    char e = *d->p++;
    switch (e) {
    case '"': luaL_addchar(&B, '"'); break;
    case '\\': luaL_addchar(&B, '\\'); break;
    case '/': luaL_addchar(&B, '/'); break;
    case 'b': luaL_addchar(&B, '\b'); break;
    case 'f': luaL_addchar(&B, '\f'); break;
    case 'n': luaL_addchar(&B, '\n'); break;
    case 'r': luaL_addchar(&B, '\r'); break;
    case 't': luaL_addchar(&B, '\t'); break;
    case 'u': {
      unsigned cp;
      if (!dec_hex4(d, &cp))
        dec_error(d, "bad \\u escape (need 4 hex digits)");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (d->end - d->p < 2 || d->p[0] != '\\' || d->p[1] != 'u')
          dec_error(d, "high surrogate \\u escape without its low half");
        d->p += 2;
        if (!dec_hex4(d, &lo))
          dec_error(d, "bad \\u escape (need 4 hex digits)");
        if (lo < 0xDC00 || lo > 0xDFFF)
          dec_error(d, "high surrogate \\u escape without its low half");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        dec_error(d, "low surrogate \\u escape without its high half");
      }
      add_utf8(&B, cp);
      break;
    }
    default:
      d->p--;
      dec_error(d, "invalid escape in string");
    }
  }
  luaL_pushresult(&B);
}

static void dec_number(struct dec *d) {
  const char *s = d->p;
  const char *q = d->p;
  if (q < d->end && *q == '-')
    q++;
  if (q >= d->end || !(*q >= '0' && *q <= '9'))
    dec_error(d, "invalid number");
  if (*q == '0') {
    q++;
  } else {
    while (q < d->end && *q >= '0' && *q <= '9')
      q++;
  }
  int isfloat = 0;
  if (q < d->end && *q == '.') {
    q++;
    isfloat = 1;
    if (q >= d->end || !(*q >= '0' && *q <= '9')) {
      d->p = q;
      dec_error(d, "invalid number (digit expected after '.')");
    }
    while (q < d->end && *q >= '0' && *q <= '9')
      q++;
  }
  if (q < d->end && (*q == 'e' || *q == 'E')) {
    q++;
    isfloat = 1;
    if (q < d->end && (*q == '+' || *q == '-'))
      q++;
    if (q >= d->end || !(*q >= '0' && *q <= '9')) {
      d->p = q;
      dec_error(d, "invalid number (digit expected in exponent)");
    }
    while (q < d->end && *q >= '0' && *q <= '9')
      q++;
  }
  d->p = q;
  size_t n = (size_t)(q - s);
  if (!isfloat) {
    /* Integer if it fits 64 bits, else a float. */
    int neg = (*s == '-');
    const char *r = s + neg;
    unsigned long long acc = 0;
    int overflow = 0;
    for (; r < q; r++) {
      unsigned dgt = (unsigned)(*r - '0');
      if (acc > (~0ULL - dgt) / 10) {
        overflow = 1;
        break;
      }
      acc = acc * 10 + dgt;
    }
    if (!overflow) {
      if (!neg && acc <= (unsigned long long)LUA_MAXINTEGER) {
        lua_pushinteger(d->L, (lua_Integer)acc);
        return;
      }
      if (neg && acc <= (unsigned long long)LUA_MAXINTEGER + 1ULL) {
        lua_pushinteger(d->L, (lua_Integer)(0ULL - acc));
        return;
      }
    }
  }
  char tmp[128];
  char *text = tmp;
  if (n >= sizeof tmp) {
    /* Absurdly long number: copy to a Lua string (freed by the GC). */
    lua_pushlstring(d->L, s, n);
    text = (char *)lua_tostring(d->L, -1);
  } else {
    memcpy(tmp, s, n);
    tmp[n] = '\0';
  }
  double v = strtod(text, NULL);
  if (text != tmp)
    lua_pop(d->L, 1);
  lua_pushnumber(d->L, (lua_Number)v);
}

static int dec_literal(struct dec *d, const char *lit, size_t n) {
  if ((size_t)(d->end - d->p) >= n && memcmp(d->p, lit, n) == 0) {
    d->p += n;
    return 1;
  }
  return 0;
}

/* The nesting limit in force (see lunabox.h). */
int lbx_json_max_depth = 100;

static void dec_enter(struct dec *d) {
  if (++d->depth > lbx_json_max_depth) {
    char msg[80];
    snprintf(msg, sizeof msg, "nested deeper than %d levels",
             lbx_json_max_depth);
    dec_error(d, msg);
  }
  luaL_checkstack(d->L, 4, "JSON nesting");
}

static void dec_array(struct dec *d) {
  lua_State *L = d->L;
  dec_enter(d);
  lua_createtable(L, 0, 0);
  dec_ws(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    luaL_getmetatable(L, LBX_EMPTY_ARRAY_MT);
    lua_setmetatable(L, -2);
    d->depth--;
    return;
  }
  lua_Integer i = 0;
  for (;;) {
    dec_value(d);
    i++;
    if (lua_isnil(L, -1))
      lua_pop(L, 1); /* null leaves a hole */
    else
      lua_rawseti(L, -2, i);
    dec_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      continue;
    }
    if (d->p < d->end && *d->p == ']') {
      d->p++;
      break;
    }
    dec_error(d, "expected ',' or ']' in array");
  }
  d->depth--;
}

static void dec_object(struct dec *d) {
  lua_State *L = d->L;
  dec_enter(d);
  lua_createtable(L, 0, 0);
  dec_ws(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    d->depth--;
    return;
  }
  for (;;) {
    dec_ws(d);
    if (d->p >= d->end || *d->p != '"')
      dec_error(d, "expected a string key in object");
    d->p++;
    dec_string(d);
    dec_ws(d);
    if (d->p >= d->end || *d->p != ':')
      dec_error(d, "expected ':' after object key");
    d->p++;
    dec_value(d);
    if (lua_isnil(L, -1))
      lua_pop(L, 2); /* null member: key absent */
    else
      lua_rawset(L, -3);
    dec_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      continue;
    }
    if (d->p < d->end && *d->p == '}') {
      d->p++;
      break;
    }
    dec_error(d, "expected ',' or '}' in object");
  }
  d->depth--;
}

static void dec_value(struct dec *d) {
  dec_ws(d);
  if (d->p >= d->end)
    dec_error(d, "unexpected end of JSON text");
  char c = *d->p;
  switch (c) {
  case '{':
    d->p++;
    dec_object(d);
    return;
  case '[':
    d->p++;
    dec_array(d);
    return;
  case '"':
    d->p++;
    dec_string(d);
    return;
  case 't':
    if (dec_literal(d, "true", 4)) {
      lua_pushboolean(d->L, 1);
      return;
    }
    break;
  case 'f':
    if (dec_literal(d, "false", 5)) {
      lua_pushboolean(d->L, 0);
      return;
    }
    break;
  case 'n':
    if (dec_literal(d, "null", 4)) {
      lua_pushnil(d->L);
      return;
    }
    break;
  default:
    if (c == '-' || (c >= '0' && c <= '9')) {
      dec_number(d);
      return;
    }
  }
  dec_error(d, "unexpected character");
}

void lbx_json_decode(lua_State *L, const char *s, size_t len,
                     const char *what) {
  struct dec d = {L, s, s, s + len, what, 0};
  luaL_checkstack(L, 4, "JSON");
  dec_value(&d);
  dec_ws(&d);
  if (d.p != d.end)
    dec_error(&d, "unexpected text after the JSON value");
}

/* ===================================================================== */
/* Encoding                                                               */
/* ===================================================================== */

const char lbx_too_large = 0;

/* One step of the path from the root to the value being encoded. */
struct step {
  int is_key;      /* 1: string key at stack index `key`; 0: index `i` */
  int key;
  lua_Integer i;
};

struct enc {
  lua_State *L;
  lbx_buf *b;
  const char *root;
  size_t limit;
  int depth;
  const void *open[LBX_JSON_DEPTH_CEIL + 1]; /* tables on the path */
  struct step path[LBX_JSON_DEPTH_CEIL + 1];
  int empty_array_mt; /* stack index of the empty-array marker metatable */
  int with_where;     /* prefix errors with the Lua caller's position */
};

static int is_identifier(const char *s, size_t n) {
  if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* Raise "<root><path>: <msg>" where msg is already formatted. */
static _Noreturn void enc_error(struct enc *e, const char *msg) {
  lua_State *L = e->L;
  luaL_Buffer B;
  luaL_checkstack(L, 4, "JSON error");
  luaL_buffinit(L, &B);
  if (e->with_where) {
    luaL_where(L, 1);
    luaL_addvalue(&B);
  }
  luaL_addstring(&B, e->root);
  for (int k = 0; k < e->depth; k++) {
    struct step *st = &e->path[k];
    if (st->is_key) {
      size_t n;
      const char *s = lua_tolstring(L, st->key, &n);
      if (is_identifier(s, n)) {
        luaL_addchar(&B, '.');
        luaL_addlstring(&B, s, n);
      } else {
        luaL_addstring(&B, "[\"");
        for (size_t j = 0; j < n && j < 60; j++) {
          char c = s[j];
          if (c == '"' || c == '\\')
            luaL_addchar(&B, '\\');
          luaL_addchar(&B, ((unsigned char)c < 0x20) ? '?' : c);
        }
        if (n > 60)
          luaL_addstring(&B, "...");
        luaL_addstring(&B, "\"]");
      }
    } else {
      char num[32];
      snprintf(num, sizeof num, "[%lld]", (long long)st->i);
      luaL_addstring(&B, num);
    }
  }
  luaL_addstring(&B, ": ");
  luaL_addstring(&B, msg);
  luaL_pushresult(&B);
  lua_error(L);
  abort(); /* not reached */
}

static void enc_add(struct enc *e, const char *s, size_t n) {
  if (e->limit && e->b->len + n > e->limit) {
    lua_pushlightuserdata(e->L, (void *)&lbx_too_large);
    lua_error(e->L);
  }
  lbx_buf_add(e->L, e->b, s, n);
}

static void enc_string(struct enc *e, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  enc_add(e, "\"", 1);
  size_t run = 0; /* start of the pending run of plain bytes */
  size_t i = 0;
  while (i < n) {
    unsigned char c = u[i];
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0x80) {
      size_t k = lbx_utf8_seq(u + i, n - i);
      if (k == 0) {
        char msg[96];
        snprintf(msg, sizeof msg,
                 "string is not valid UTF-8 (byte %zu is 0x%02x); JSON "
                 "text must be UTF-8",
                 i + 1, (unsigned)c);
        enc_error(e, msg);
      }
      i += k;
      continue;
    }
    enc_add(e, s + run, i - run);
    char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
    size_t en = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      en = 6;
    }
    enc_add(e, esc, en);
    i++;
    run = i;
  }
  enc_add(e, s + run, n - run);
  enc_add(e, "\"", 1);
}

static void enc_float(struct enc *e, double v) {
  if (isnan(v))
    enc_error(e, "NaN cannot be represented in JSON");
  if (isinf(v))
    enc_error(e, v > 0 ? "inf (math.huge) cannot be represented in JSON"
                       : "-inf (-math.huge) cannot be represented in JSON");
  char tmp[48];
  /* Shortest text that reads back as the same double. */
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (strtod(tmp, NULL) == v)
      break;
  }
  if (strpbrk(tmp, ".eE") == NULL)
    strcat(tmp, ".0"); /* keep it a float: 2.0, not 2 */
  enc_add(e, tmp, strlen(tmp));
}

static void enc_value(struct enc *e, int idx);

struct skey {
  const char *s;
  size_t n;
};

static int skey_cmp(const void *a, const void *b) {
  const struct skey *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  if (c != 0)
    return c;
  return (x->n > y->n) - (x->n < y->n);
}

static void enc_table(struct enc *e, int t) {
  lua_State *L = e->L;
  const void *p = lua_topointer(L, t);
  if (e->depth >= lbx_json_max_depth) {
    char msg[120];
    snprintf(msg, sizeof msg,
             "nested deeper than %d levels (the most lunabox handles)",
             lbx_json_max_depth);
    enc_error(e, msg);
  }
  for (int k = 0; k < e->depth; k++)
    if (e->open[k] == p)
      enc_error(e, "table contains itself (a cycle) and cannot be encoded");
  luaL_checkstack(L, 8, "JSON nesting");

  /* Classify the keys. */
  lua_Integer nint = 0, maxint = 0, badint = 0;
  int have_bad_int = 0;
  size_t nstr = 0;
  int first_str = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1); /* value */
    int kt = lua_type(L, -1);
    if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
      lua_Integer k = lua_tointeger(L, -1);
      nint++;
      if (k < 1 && !have_bad_int) {
        have_bad_int = 1;
        badint = k;
      }
      if (k > maxint)
        maxint = k;
    } else if (kt == LUA_TSTRING) {
      nstr++;
      if (!first_str) {
        /* Keep a copy of one string key (for messages) below the
         * iteration key: [... copy key]. */
        first_str = lua_gettop(L);
        lua_pushvalue(L, -1);
      }
    } else {
      char msg[160];
      if (kt == LUA_TNUMBER)
        snprintf(msg, sizeof msg,
                 "table has a non-integer number key (%.14g); only string "
                 "keys (object) or 1..n (array) can be encoded",
                 (double)lua_tonumber(L, -1));
      else
        snprintf(msg, sizeof msg,
                 "table has a %s key; only string keys (object) or 1..n "
                 "(array) can be encoded",
                 luaL_typename(L, -1));
      enc_error(e, msg);
    }
  }
  e->open[e->depth] = p;

  if (nint > 0 && nstr > 0) {
    char msg[200];
    const char *sk = lua_tostring(L, first_str);
    snprintf(msg, sizeof msg,
             "table mixes array items (e.g. [%lld]) and string keys (e.g. "
             "\"%.40s\"); use either 1..n or only string keys",
             (long long)maxint, sk);
    enc_error(e, msg);
  }
  if (first_str)
    lua_remove(L, first_str);

  if (nint > 0) {
    if (have_bad_int || maxint != nint) {
      char msg[200];
      if (have_bad_int)
        snprintf(msg, sizeof msg,
                 "array has key [%lld]; arrays must have keys 1..n",
                 (long long)badint);
      else
        snprintf(msg, sizeof msg,
                 "sparse array: %lld items but largest key is [%lld] (a nil "
                 "hole?); arrays must have keys 1..n",
                 (long long)nint, (long long)maxint);
      enc_error(e, msg);
    }
    enc_add(e, "[", 1);
    for (lua_Integer i = 1; i <= nint; i++) {
      if (i > 1)
        enc_add(e, ",", 1);
      lua_rawgeti(L, t, i);
      e->path[e->depth].is_key = 0;
      e->path[e->depth].i = i;
      e->depth++;
      enc_value(e, lua_gettop(L));
      e->depth--;
      lua_pop(L, 1);
    }
    enc_add(e, "]", 1);
    return;
  }

  if (nstr == 0) {
    int is_array = 0;
    if (lua_getmetatable(L, t)) {
      is_array = lua_rawequal(L, -1, e->empty_array_mt);
      lua_pop(L, 1);
    }
    enc_add(e, is_array ? "[]" : "{}", 2);
    return;
  }

  /* Object: sort the keys so the text does not depend on hash order. The
   * keys are first copied into a table of their own, which keeps the key
   * strings alive (and their bytes in place) even if a finalizer running
   * during an allocation below changes `t`. */
  if (nstr > ((size_t)-1) / sizeof(struct skey) || nstr > 0x7fffffff)
    enc_error(e, "table too large");
  lua_createtable(L, (int)nstr, 0);
  int keys_tbl = lua_gettop(L);
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) { /* a finalizer may add others */
      lua_pushvalue(L, -1);
      lua_rawseti(L, keys_tbl, ++k);
    }
  }
  nstr = (size_t)k; /* the table may have changed meanwhile */
  struct skey *keys =
      lua_newuserdatauv(L, (nstr ? nstr : 1) * sizeof(struct skey), 0);
  int keys_idx = lua_gettop(L);
  for (size_t j = 0; j < nstr; j++) {
    lua_rawgeti(L, keys_tbl, (lua_Integer)j + 1);
    keys[j].s = lua_tolstring(L, -1, &keys[j].n); /* a string: no copy */
    lua_pop(L, 1); /* still referenced by keys_tbl */
  }
  qsort(keys, nstr, sizeof(struct skey), skey_cmp);
  enc_add(e, "{", 1);
  for (size_t j = 0; j < nstr; j++) {
    if (j > 0)
      enc_add(e, ",", 1);
    enc_string(e, keys[j].s, keys[j].n);
    enc_add(e, ":", 1);
    lua_pushlstring(L, keys[j].s, keys[j].n);
    int key_idx = lua_gettop(L);
    lua_pushvalue(L, key_idx);
    lua_rawget(L, t);
    e->path[e->depth].is_key = 1;
    e->path[e->depth].key = key_idx;
    e->depth++;
    enc_value(e, lua_gettop(L));
    e->depth--;
    lua_pop(L, 2);
  }
  enc_add(e, "}", 1);
  lua_remove(L, keys_idx);
  lua_remove(L, keys_tbl);
}

static void enc_value(struct enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    enc_add(e, "null", 4);
    return;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx))
      enc_add(e, "true", 4);
    else
      enc_add(e, "false", 5);
    return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      char tmp[32];
      int n = snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
      enc_add(e, tmp, (size_t)n);
    } else {
      enc_float(e, (double)lua_tonumber(L, idx));
    }
    return;
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    enc_string(e, s, n);
    return;
  }
  case LUA_TTABLE:
    enc_table(e, idx);
    return;
  default: {
    char msg[120];
    snprintf(msg, sizeof msg, "a %s cannot be represented in JSON",
             luaL_typename(L, idx));
    enc_error(e, msg);
  }
  }
}

void lbx_json_encode(lua_State *L, int idx, lbx_buf *b, const char *root,
                     size_t limit, int with_where) {
  idx = lua_absindex(L, idx);
  struct enc *e = lua_newuserdatauv(L, sizeof(struct enc), 0);
  int e_idx = lua_gettop(L);
  e->L = L;
  e->b = b;
  e->root = root;
  e->limit = limit;
  e->depth = 0;
  e->with_where = with_where;
  luaL_getmetatable(L, LBX_EMPTY_ARRAY_MT);
  e->empty_array_mt = lua_gettop(L);
  enc_value(e, idx);
  lua_settop(L, e_idx - 1);
}
