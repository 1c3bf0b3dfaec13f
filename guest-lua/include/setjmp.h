/*
 * setjmp.h for the lunabox guest (wasm32-wasip1 with exception handling).
 *
 * The 2022 wasi-libc ships no setjmp.h. LLVM lowers calls to the exact names
 * `setjmp` and `longjmp` (with -mllvm -wasm-enable-sjlj) into calls to the
 * runtime in src/sjlj.c plus a throw/catch of the `__c_longjmp` tag, so the
 * functions below are never called directly.
 */
#ifndef LUNABOX_SETJMP_H
#define LUNABOX_SETJMP_H

#ifdef __cplusplus
extern "C" {
#endif

/* 32 bytes, 8-aligned: room for the runtime's record in src/sjlj.c. */
typedef struct {
  _Alignas(8) unsigned char __lunabox_jb[32];
} jmp_buf[1];

int setjmp(jmp_buf env) __attribute__((__returns_twice__));
_Noreturn void longjmp(jmp_buf env, int val);

/* Lua with LUA_USE_POSIX calls _setjmp/_longjmp; LLVM only rewrites the
 * plain names, so map them. */
#define _setjmp setjmp
#define _longjmp longjmp

#ifdef __cplusplus
}
#endif

#endif
