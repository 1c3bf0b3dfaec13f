/*
 * Runtime support for setjmp/longjmp lowered to WebAssembly exception
 * handling (LLVM's -wasm-enable-sjlj with the standard, exnref encoding).
 *
 * LLVM rewrites each function that calls setjmp: every setjmp call becomes
 * __wasm_setjmp(env, label, frame) and each call that may longjmp is wrapped
 * in a try_table catching the `__c_longjmp` tag. The tag's payload is a
 * pointer to a {env, val} pair; the catching frame asks __wasm_setjmp_test
 * whether `env` belongs to it (non-zero label) or rethrows.
 */
#include <setjmp.h>
#include <stdint.h>

/* What we keep in a jmp_buf (must fit the 32 bytes of setjmp.h). */
struct lunabox_jmp {
  void *frame;   /* invocation id of the function that called setjmp */
  uint32_t label; /* which setjmp call site inside that function */
  struct {
    void *env;
    int val;
  } arg;         /* payload of the __c_longjmp exception */
};

_Static_assert(sizeof(struct lunabox_jmp) <= sizeof(jmp_buf),
               "jmp_buf too small for the SjLj record");

/* The exception tag that carries longjmp; LLVM 22 no longer defines it. */
__asm__(".globl __c_longjmp\n"
        ".tagtype __c_longjmp i32\n"
        "__c_longjmp:\n");

void __wasm_setjmp(void *env, uint32_t label, void *func_invocation_id) {
  struct lunabox_jmp *jb = env;
  jb->frame = func_invocation_id;
  jb->label = label;
}

uint32_t __wasm_setjmp_test(void *env, void *func_invocation_id) {
  struct lunabox_jmp *jb = env;
  if (jb->frame == func_invocation_id)
    return jb->label;
  return 0;
}

_Noreturn void __wasm_longjmp(void *env, int val) {
  struct lunabox_jmp *jb = env;
  jb->arg.env = env;
  jb->arg.val = val != 0 ? val : 1;
  /* Tag 1 is the C longjmp tag (`__c_longjmp`); 0 would be C++. */
  __builtin_wasm_throw(1, &jb->arg);
}
