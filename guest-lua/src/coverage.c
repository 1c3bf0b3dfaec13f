/*
 * coverage.c: which lines of the hook's chunk ran, for `lunabox fuzz`.
 *
 * Only when the hook options ask for it (`coverage`): a Lua line hook marks
 * each line of the chunk as it starts, the Run functions note the chunk's
 * current line at each call, and at the end of the hook (a value or an
 * error) the `coverage` import gets the lines that ran, the lines that have
 * code (every function of the chunk), the last line that ran and each Run
 * call's line. Without the option no hook is set and nothing is allocated:
 * a normal hook pays one flag test per Run call.
 *
 * The chunk's functions are told apart from others by their `source`
 * string: every function the parser made from the chunk shares the one
 * TString the chunk was loaded with.
 */
#include <stdlib.h>
#include <string.h>

#include "hook.h"
#include "lauxlib.h"
#include "ldebug.h"
#include "lobject.h"
#include "lstate.h"
#include "lunabox.h"

int lbx_cov_on;

static struct {
  const TString *source; /* the chunk's source name */
  unsigned char *ran;    /* [line] = 1: the line ran */
  unsigned char *code;   /* [line] = 1: the line has code */
  size_t size;           /* entries of ran and code (lines + 1) */
  uint32_t last;         /* the chunk's line that ran last */
  uint32_t *calls;       /* each Run call's line */
  size_t ncalls, cap;
} cov;

static void line_hook(lua_State *L, lua_Debug *ar) {
  (void)L;
  if (ar->event != LUA_HOOKLINE)
    return;
  CallInfo *ci = ar->i_ci;
  if (!isLua(ci) || ci_func(ci)->p->source != cov.source)
    return;
  int line = ar->currentline;
  if (line > 0 && (size_t)line < cov.size) {
    cov.ran[line] = 1;
    cov.last = (uint32_t)line;
  }
}

static void mark_code(const Proto *p) {
  /* As ldebug.c's collectvalidlines: a vararg function's first
   * instruction (OP_VARARGPREP) is not a line of its own. */
  for (int i = p->is_vararg ? 1 : 0; i < p->sizelineinfo; i++) {
    int line = luaG_getfuncline((Proto *)p, i);
    if (line > 0 && (size_t)line < cov.size)
      cov.code[line] = 1;
  }
  for (int k = 0; k < p->sizep; k++)
    mark_code(p->p[k]);
}

void lbx_cov_begin(lua_State *L, const char *src, size_t len) {
  lbx_cov_on = 1;
  memset(&cov, 0, sizeof cov);
  const TValue *f = s2v(L->top.p - 1);
  if (!ttisLclosure(f))
    return;
  const Proto *p = clLvalue(f)->p;
  size_t lines = 1;
  for (size_t i = 0; i < len; i++)
    lines += src[i] == '\n';
  cov.size = lines + 2;
  cov.ran = calloc(cov.size, 1);
  cov.code = calloc(cov.size, 1);
  if (cov.ran == NULL || cov.code == NULL) {
    free(cov.ran);
    free(cov.code);
    memset(&cov, 0, sizeof cov);
    return;
  }
  cov.source = p->source;
  mark_code(p);
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}

void lbx_cov_note_call(void) {
  if (cov.ncalls == cov.cap) {
    size_t cap = cov.cap ? cov.cap * 2 : 16;
    uint32_t *grown = realloc(cov.calls, cap * sizeof *grown);
    if (grown == NULL)
      return; /* out of memory: the call goes unnoted */
    cov.calls = grown;
    cov.cap = cap;
  }
  cov.calls[cov.ncalls++] = cov.last;
}

/* The marked lines of `map` as a list (NULL pointer when empty or out of
 * memory). */
static hook_list_u32_t lines_of(const unsigned char *map) {
  hook_list_u32_t out = {NULL, 0};
  size_t n = 0;
  for (size_t i = 0; i < cov.size; i++)
    n += map[i];
  if (n == 0)
    return out;
  out.ptr = malloc(n * sizeof *out.ptr);
  if (out.ptr == NULL)
    return out;
  for (size_t i = 0; i < cov.size; i++)
    if (map[i])
      out.ptr[out.len++] = (uint32_t)i;
  return out;
}

void lbx_cov_end(lua_State *L) {
  lua_sethook(L, NULL, 0, 0);
  lunabox_hook_host_coverage_report_t r;
  memset(&r, 0, sizeof r);
  if (cov.size > 0) {
    r.ran = lines_of(cov.ran);
    r.lines = lines_of(cov.code);
  }
  r.last_line = cov.last;
  r.call_lines.ptr = cov.calls;
  r.call_lines.len = cov.calls ? cov.ncalls : 0;
  lunabox_hook_host_coverage(&r);
  free(r.ran.ptr);
  free(r.lines.ptr);
  free(cov.calls);
  free(cov.ran);
  free(cov.code);
  memset(&cov, 0, sizeof cov);
  lbx_cov_on = 0;
}
