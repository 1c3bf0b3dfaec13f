/*
 * The WASI preview 1 functions wasi-libc calls, made of WASI 0.2 imports.
 *
 * wasi-libc (Debian's, preview 1 only) reaches the system through 18
 * `wasi_snapshot_preview1` imports. Defining them here, on top of the
 * WASI 0.2 interfaces the component imports anyway, means the component
 * needs no preview 1 adapter: one core module of ours instead of four, and
 * a hook's instantiation links about a third of the functions it did (the
 * adapter's exports, its own WASI imports and the shim between them).
 *
 * What a hook sees:
 * - fd 0 reads as empty, fds 1 and 2 take writes and drop them (the host
 *   gives a hook no stdio; `print` goes to the log through `host.log`);
 * - fd 3 and up: the hook's scratch directory, asked for
 *   (`preopens.get-directories`) on the first `fd_prestat_get` (see
 *   `lbx_ensure_preopens` in runner.c), and the files opened under it;
 * - reads and writes go through `read-via-stream`, `write-via-stream` and
 *   `append-via-stream` at the descriptor's position, the functions the
 *   host meters (host/sandbox/src/scratch_quota.rs);
 * - no environment variables; clocks and random bytes from WASI 0.2.
 *
 * Until the first hook starts (`lbx_running`), nothing here calls an
 * import, so that pre-initialization is deterministic.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#include "hook.h"
#include "lunabox.h"

#define P1(name) __imported_wasi_snapshot_preview1_##name

int32_t P1(environ_get)(int32_t environ, int32_t buf);
int32_t P1(environ_sizes_get)(int32_t count, int32_t size);
int32_t P1(clock_time_get)(int32_t id, int64_t precision, int32_t out);
int32_t P1(fd_close)(int32_t fd);
int32_t P1(fd_fdstat_get)(int32_t fd, int32_t out);
int32_t P1(fd_fdstat_set_flags)(int32_t fd, int32_t flags);
int32_t P1(fd_prestat_get)(int32_t fd, int32_t out);
int32_t P1(fd_prestat_dir_name)(int32_t fd, int32_t path, int32_t len);
int32_t P1(fd_read)(int32_t fd, int32_t iovs, int32_t n, int32_t out);
int32_t P1(fd_renumber)(int32_t from, int32_t to);
int32_t P1(fd_seek)(int32_t fd, int64_t offset, int32_t whence, int32_t out);
int32_t P1(fd_write)(int32_t fd, int32_t iovs, int32_t n, int32_t out);
int32_t P1(path_open)(int32_t dirfd, int32_t dirflags, int32_t path,
                      int32_t path_len, int32_t oflags, int64_t rights,
                      int64_t inheriting, int32_t fdflags, int32_t out);
int32_t P1(path_remove_directory)(int32_t fd, int32_t path, int32_t len);
int32_t P1(path_rename)(int32_t fd, int32_t old_path, int32_t old_len,
                        int32_t new_fd, int32_t new_path, int32_t new_len);
int32_t P1(path_unlink_file)(int32_t fd, int32_t path, int32_t len);
void P1(proc_exit)(int32_t code);
int32_t P1(random_get)(int32_t buf, int32_t len);

#define PTR(T, p) ((T *)(uintptr_t)(p))

/* ---------------------------------------------------------------------- */
/* Descriptors                                                             */

/* What a descriptor is: stdin (reads empty), stdout or stderr (writes are
 * dropped), or a directory or file of the scratch directory. */
enum kind { FREE = 0, STDIN, SINK, NODE };

struct fd {
  uint8_t kind;
  uint8_t type;   /* WASI 0.2 descriptor-type of a NODE */
  uint8_t append; /* opened with O_APPEND */
  wasi_filesystem_types_own_descriptor_t desc;
  uint64_t pos;
  char *preopen; /* the guest path of a preopened directory, or NULL */
};

/* A hook opens few files at once; more than this is EMFILE. */
#define MAX_FDS 128

static struct fd fds[MAX_FDS] = {
    [0] = {.kind = STDIN}, [1] = {.kind = SINK}, [2] = {.kind = SINK}};
static int preopens_taken;
int lbx_running;

/* The open descriptor `fd`, or NULL. */
static struct fd *open_fd(int32_t fd) {
  if (fd < 0 || fd >= MAX_FDS || fds[fd].kind == FREE)
    return NULL;
  return &fds[fd];
}

/* The open directory or file `fd`, or NULL. */
static struct fd *node(int32_t fd) {
  struct fd *f = open_fd(fd);
  return f != NULL && f->kind == NODE ? f : NULL;
}

static wasi_filesystem_types_borrow_descriptor_t borrow(struct fd *f) {
  return wasi_filesystem_types_borrow_descriptor(f->desc);
}

static int32_t free_slot(void) {
  for (int32_t i = 3; i < MAX_FDS; i++)
    if (fds[i].kind == FREE)
      return i;
  return -1;
}

static void release(struct fd *f) {
  if (f->kind == NODE)
    wasi_filesystem_types_descriptor_drop_own(f->desc);
  free(f->preopen);
  memset(f, 0, sizeof *f);
}

/* A WASI 0.2 filesystem error as a preview 1 errno. */
static int32_t errno_of(wasi_filesystem_types_error_code_t e) {
  static const uint16_t map[] = {
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_ACCESS] = __WASI_ERRNO_ACCES,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_WOULD_BLOCK] = __WASI_ERRNO_AGAIN,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_ALREADY] = __WASI_ERRNO_ALREADY,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_BAD_DESCRIPTOR] = __WASI_ERRNO_BADF,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_BUSY] = __WASI_ERRNO_BUSY,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_DEADLOCK] = __WASI_ERRNO_DEADLK,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_QUOTA] = __WASI_ERRNO_DQUOT,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_EXIST] = __WASI_ERRNO_EXIST,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_FILE_TOO_LARGE] = __WASI_ERRNO_FBIG,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_ILLEGAL_BYTE_SEQUENCE] =
          __WASI_ERRNO_ILSEQ,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_IN_PROGRESS] = __WASI_ERRNO_INPROGRESS,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_INTERRUPTED] = __WASI_ERRNO_INTR,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_INVALID] = __WASI_ERRNO_INVAL,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_IO] = __WASI_ERRNO_IO,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_IS_DIRECTORY] = __WASI_ERRNO_ISDIR,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_LOOP] = __WASI_ERRNO_LOOP,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_TOO_MANY_LINKS] = __WASI_ERRNO_MLINK,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_MESSAGE_SIZE] = __WASI_ERRNO_MSGSIZE,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NAME_TOO_LONG] =
          __WASI_ERRNO_NAMETOOLONG,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NO_DEVICE] = __WASI_ERRNO_NODEV,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NO_ENTRY] = __WASI_ERRNO_NOENT,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NO_LOCK] = __WASI_ERRNO_NOLCK,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_INSUFFICIENT_MEMORY] =
          __WASI_ERRNO_NOMEM,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_INSUFFICIENT_SPACE] =
          __WASI_ERRNO_NOSPC,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NOT_DIRECTORY] = __WASI_ERRNO_NOTDIR,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NOT_EMPTY] = __WASI_ERRNO_NOTEMPTY,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NOT_RECOVERABLE] =
          __WASI_ERRNO_NOTRECOVERABLE,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_UNSUPPORTED] = __WASI_ERRNO_NOTSUP,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NO_TTY] = __WASI_ERRNO_NOTTY,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NO_SUCH_DEVICE] = __WASI_ERRNO_NXIO,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_OVERFLOW] = __WASI_ERRNO_OVERFLOW,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_NOT_PERMITTED] = __WASI_ERRNO_PERM,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_PIPE] = __WASI_ERRNO_PIPE,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_READ_ONLY] = __WASI_ERRNO_ROFS,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_INVALID_SEEK] = __WASI_ERRNO_SPIPE,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_TEXT_FILE_BUSY] = __WASI_ERRNO_TXTBSY,
      [WASI_FILESYSTEM_TYPES_ERROR_CODE_CROSS_DEVICE] = __WASI_ERRNO_XDEV,
  };
  if (e < sizeof map / sizeof map[0] && map[e] != 0)
    return map[e];
  return __WASI_ERRNO_IO;
}

/* A stream error as an errno (its error resource dropped). */
static int32_t stream_errno(wasi_io_streams_stream_error_t *e) {
  if (e->tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED)
    wasi_io_error_error_drop_own(e->val.last_operation_failed);
  return __WASI_ERRNO_IO;
}

static hook_string_t text(int32_t ptr, int32_t len) {
  hook_string_t s = {PTR(uint8_t, ptr), (size_t)(uint32_t)len};
  return s;
}

/* ---------------------------------------------------------------------- */
/* Environment, clocks, randomness, exit                                   */

int32_t P1(environ_get)(int32_t environ, int32_t buf) {
  (void)environ;
  (void)buf;
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(environ_sizes_get)(int32_t count, int32_t size) {
  *PTR(uint32_t, count) = 0;
  *PTR(uint32_t, size) = 0;
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(clock_time_get)(int32_t id, int64_t precision, int32_t out) {
  (void)precision;
  uint64_t ns = 0;
  if (!lbx_running) {
    /* Pre-initialization (math's seed): the snapshot must not hold the
     * build's time. */
    *PTR(uint64_t, out) = 0;
    return (uint32_t)id <= __WASI_CLOCKID_THREAD_CPUTIME_ID
               ? __WASI_ERRNO_SUCCESS
               : __WASI_ERRNO_INVAL;
  }
  switch (id) {
  case __WASI_CLOCKID_REALTIME: {
    wasi_clocks_wall_clock_datetime_t now;
    wasi_clocks_wall_clock_now(&now);
    ns = now.seconds * 1000000000ull + now.nanoseconds;
    break;
  }
  case __WASI_CLOCKID_MONOTONIC:
  case __WASI_CLOCKID_PROCESS_CPUTIME_ID:
  case __WASI_CLOCKID_THREAD_CPUTIME_ID:
    ns = wasi_clocks_monotonic_clock_now();
    break;
  default:
    return __WASI_ERRNO_INVAL;
  }
  *PTR(uint64_t, out) = ns;
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(random_get)(int32_t buf, int32_t len) {
  if (!lbx_running) {
    memset(PTR(uint8_t, buf), 0, (size_t)(uint32_t)len);
    return __WASI_ERRNO_SUCCESS;
  }
  hook_list_u8_t bytes;
  wasi_random_random_get_random_bytes((uint64_t)(uint32_t)len, &bytes);
  size_t n = bytes.len < (size_t)(uint32_t)len ? bytes.len : (uint32_t)len;
  memcpy(PTR(uint8_t, buf), bytes.ptr, n);
  hook_list_u8_free(&bytes);
  return n == (size_t)(uint32_t)len ? __WASI_ERRNO_SUCCESS : __WASI_ERRNO_IO;
}

void P1(proc_exit)(int32_t code) {
  /* The sandbox offers no os.exit; anything else that exits is a bug. */
  (void)code;
  __builtin_trap();
}

/* ---------------------------------------------------------------------- */
/* Preopens                                                                */

static void take_preopens(void) {
  if (preopens_taken || !lbx_running)
    return;
  preopens_taken = 1;
  wasi_filesystem_preopens_list_tuple2_own_descriptor_string_t dirs;
  wasi_filesystem_preopens_get_directories(&dirs);
  for (size_t i = 0; i < dirs.len; i++) {
    wasi_filesystem_preopens_tuple2_own_descriptor_string_t *d = &dirs.ptr[i];
    int32_t fd = free_slot();
    char *path = malloc(d->f1.len + 1);
    if (fd < 0 || path == NULL) {
      free(path);
      wasi_filesystem_types_descriptor_drop_own(d->f0);
      continue;
    }
    memcpy(path, d->f1.ptr, d->f1.len);
    path[d->f1.len] = '\0';
    fds[fd] = (struct fd){.kind = NODE,
                          .type = WASI_FILESYSTEM_TYPES_DESCRIPTOR_TYPE_DIRECTORY,
                          .desc = d->f0,
                          .preopen = path};
    hook_string_free(&d->f1);
  }
  free(dirs.ptr);
}

int32_t P1(fd_prestat_get)(int32_t fd, int32_t out) {
  take_preopens();
  struct fd *f = node(fd);
  if (f == NULL || f->preopen == NULL)
    return __WASI_ERRNO_BADF;
  __wasi_prestat_t *ps = PTR(__wasi_prestat_t, out);
  ps->tag = __WASI_PREOPENTYPE_DIR;
  ps->u.dir.pr_name_len = strlen(f->preopen);
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(fd_prestat_dir_name)(int32_t fd, int32_t path, int32_t len) {
  struct fd *f = node(fd);
  if (f == NULL || f->preopen == NULL)
    return __WASI_ERRNO_BADF;
  size_t n = strlen(f->preopen);
  if ((size_t)(uint32_t)len < n)
    return __WASI_ERRNO_NAMETOOLONG;
  memcpy(PTR(char, path), f->preopen, n);
  return __WASI_ERRNO_SUCCESS;
}

/* ---------------------------------------------------------------------- */
/* Descriptor operations                                                   */

int32_t P1(fd_close)(int32_t fd) {
  struct fd *f = open_fd(fd);
  if (f == NULL)
    return __WASI_ERRNO_BADF;
  release(f);
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(fd_renumber)(int32_t from, int32_t to) {
  struct fd *a = open_fd(from), *b = open_fd(to);
  if (a == NULL || b == NULL)
    return __WASI_ERRNO_BADF;
  if (a == b)
    return __WASI_ERRNO_SUCCESS;
  release(b);
  *b = *a;
  memset(a, 0, sizeof *a);
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(fd_fdstat_get)(int32_t fd, int32_t out) {
  struct fd *f = open_fd(fd);
  if (f == NULL)
    return __WASI_ERRNO_BADF;
  __wasi_fdstat_t *st = PTR(__wasi_fdstat_t, out);
  memset(st, 0, sizeof *st);
  st->fs_rights_base = ~(__wasi_rights_t)0;
  st->fs_rights_inheriting = ~(__wasi_rights_t)0;
  if (f->kind != NODE) {
    st->fs_filetype = __WASI_FILETYPE_CHARACTER_DEVICE;
    /* Not a terminal (isatty looks for a character device without
     * seek and tell rights). */
    return __WASI_ERRNO_SUCCESS;
  }
  switch (f->type) {
  case WASI_FILESYSTEM_TYPES_DESCRIPTOR_TYPE_DIRECTORY:
    st->fs_filetype = __WASI_FILETYPE_DIRECTORY;
    break;
  case WASI_FILESYSTEM_TYPES_DESCRIPTOR_TYPE_REGULAR_FILE:
    st->fs_filetype = __WASI_FILETYPE_REGULAR_FILE;
    break;
  case WASI_FILESYSTEM_TYPES_DESCRIPTOR_TYPE_SYMBOLIC_LINK:
    st->fs_filetype = __WASI_FILETYPE_SYMBOLIC_LINK;
    break;
  default:
    st->fs_filetype = __WASI_FILETYPE_UNKNOWN;
  }
  if (f->append)
    st->fs_flags = __WASI_FDFLAGS_APPEND;
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(fd_fdstat_set_flags)(int32_t fd, int32_t flags) {
  struct fd *f = open_fd(fd);
  if (f == NULL)
    return __WASI_ERRNO_BADF;
  if (f->kind != NODE || (flags & ~__WASI_FDFLAGS_APPEND))
    return __WASI_ERRNO_NOTSUP;
  f->append = (flags & __WASI_FDFLAGS_APPEND) != 0;
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(fd_seek)(int32_t fd, int64_t offset, int32_t whence, int32_t out) {
  struct fd *f = open_fd(fd);
  if (f == NULL)
    return __WASI_ERRNO_BADF;
  if (f->kind != NODE)
    return __WASI_ERRNO_SPIPE;
  if (f->type == WASI_FILESYSTEM_TYPES_DESCRIPTOR_TYPE_DIRECTORY)
    return __WASI_ERRNO_BADF;
  int64_t base;
  switch (whence) {
  case __WASI_WHENCE_SET:
    base = 0;
    break;
  case __WASI_WHENCE_CUR:
    base = (int64_t)f->pos;
    break;
  case __WASI_WHENCE_END: {
    wasi_filesystem_types_descriptor_stat_t st;
    wasi_filesystem_types_error_code_t err;
    if (!wasi_filesystem_types_method_descriptor_stat(borrow(f), &st, &err))
      return errno_of(err);
    base = (int64_t)st.size;
    break;
  }
  default:
    return __WASI_ERRNO_INVAL;
  }
  if ((offset > 0 && base > INT64_MAX - offset) || base + offset < 0)
    return __WASI_ERRNO_INVAL;
  f->pos = (uint64_t)(base + offset);
  *PTR(uint64_t, out) = f->pos;
  return __WASI_ERRNO_SUCCESS;
}

/* The largest write a blocking-write-and-flush takes at once. */
#define WRITE_CHUNK 4096

int32_t P1(fd_write)(int32_t fd, int32_t iovs, int32_t n, int32_t out) {
  const __wasi_ciovec_t *iov = PTR(const __wasi_ciovec_t, iovs);
  size_t total = 0;
  struct fd *f = open_fd(fd);
  if (f == NULL || f->kind == STDIN)
    return __WASI_ERRNO_BADF;
  if (f->kind == SINK) {
    /* No stdout or stderr for a hook: the bytes are dropped. */
    for (int32_t i = 0; i < n; i++)
      total += iov[i].buf_len;
    *PTR(uint32_t, out) = (uint32_t)total;
    return __WASI_ERRNO_SUCCESS;
  }
  wasi_filesystem_types_own_output_stream_t stream;
  wasi_filesystem_types_error_code_t err;
  bool ok = f->append ? wasi_filesystem_types_method_descriptor_append_via_stream(
                            borrow(f), &stream, &err)
                      : wasi_filesystem_types_method_descriptor_write_via_stream(
                            borrow(f), f->pos, &stream, &err);
  if (!ok)
    return errno_of(err);
  int32_t rc = __WASI_ERRNO_SUCCESS;
  for (int32_t i = 0; i < n && rc == __WASI_ERRNO_SUCCESS; i++) {
    const uint8_t *p = iov[i].buf;
    size_t left = iov[i].buf_len;
    while (left > 0) {
      size_t k = left < WRITE_CHUNK ? left : WRITE_CHUNK;
      hook_list_u8_t chunk = {(uint8_t *)p, k};
      wasi_io_streams_stream_error_t se;
      if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
              wasi_io_streams_borrow_output_stream(stream), &chunk, &se)) {
        rc = stream_errno(&se);
        break;
      }
      p += k;
      left -= k;
      total += k;
    }
  }
  wasi_io_streams_output_stream_drop_own(stream);
  if (!f->append) {
    f->pos += total;
  } else {
    /* An append leaves the position at the new end of file (as on
     * Linux), where `seek("cur")` after a flush must find it. */
    wasi_filesystem_types_descriptor_stat_t st;
    if (wasi_filesystem_types_method_descriptor_stat(borrow(f), &st, &err))
      f->pos = st.size;
  }
  if (total > 0 || rc == __WASI_ERRNO_SUCCESS) {
    *PTR(uint32_t, out) = (uint32_t)total;
    return __WASI_ERRNO_SUCCESS;
  }
  return rc;
}

int32_t P1(fd_read)(int32_t fd, int32_t iovs, int32_t n, int32_t out) {
  struct fd *f = open_fd(fd);
  if (f == NULL || f->kind == SINK)
    return __WASI_ERRNO_BADF;
  if (f->kind == STDIN) {
    *PTR(uint32_t, out) = 0; /* empty stdin */
    return __WASI_ERRNO_SUCCESS;
  }
  if (f->type == WASI_FILESYSTEM_TYPES_DESCRIPTOR_TYPE_DIRECTORY)
    return __WASI_ERRNO_ISDIR;
  __wasi_iovec_t *iov = PTR(__wasi_iovec_t, iovs);
  size_t want = 0;
  for (int32_t i = 0; i < n; i++)
    want += iov[i].buf_len;
  if (want == 0) {
    *PTR(uint32_t, out) = 0;
    return __WASI_ERRNO_SUCCESS;
  }
  wasi_filesystem_types_own_input_stream_t stream;
  wasi_filesystem_types_error_code_t err;
  if (!wasi_filesystem_types_method_descriptor_read_via_stream(
          borrow(f), f->pos, &stream, &err))
    return errno_of(err);
  size_t got = 0;
  int32_t rc = __WASI_ERRNO_SUCCESS;
  for (int32_t i = 0; i < n && got < want; i++) {
    size_t filled = 0;
    while (filled < iov[i].buf_len) {
      hook_list_u8_t bytes;
      wasi_io_streams_stream_error_t se;
      if (!wasi_io_streams_method_input_stream_blocking_read(
              wasi_io_streams_borrow_input_stream(stream),
              iov[i].buf_len - filled, &bytes, &se)) {
        if (se.tag != WASI_IO_STREAMS_STREAM_ERROR_CLOSED)
          rc = stream_errno(&se);
        goto done; /* end of file, or an error */
      }
      size_t k = bytes.len < iov[i].buf_len - filled ? bytes.len
                                                       : iov[i].buf_len - filled;
      memcpy(iov[i].buf + filled, bytes.ptr, k);
      hook_list_u8_free(&bytes);
      filled += k;
      got += k;
      if (k == 0)
        goto done;
    }
  }
done:
  wasi_io_streams_input_stream_drop_own(stream);
  f->pos += got;
  if (got > 0 || rc == __WASI_ERRNO_SUCCESS) {
    *PTR(uint32_t, out) = (uint32_t)got;
    return __WASI_ERRNO_SUCCESS;
  }
  return rc;
}

/* ---------------------------------------------------------------------- */
/* Paths                                                                   */

int32_t P1(path_open)(int32_t dirfd, int32_t dirflags, int32_t path,
                      int32_t path_len, int32_t oflags, int64_t rights,
                      int64_t inheriting, int32_t fdflags, int32_t out) {
  (void)inheriting;
  struct fd *dir = node(dirfd);
  if (dir == NULL)
    return __WASI_ERRNO_BADF;
  int32_t slot = free_slot();
  if (slot < 0)
    return __WASI_ERRNO_MFILE;
  wasi_filesystem_types_path_flags_t pf = 0;
  if (dirflags & __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW)
    pf |= WASI_FILESYSTEM_TYPES_PATH_FLAGS_SYMLINK_FOLLOW;
  wasi_filesystem_types_open_flags_t of = 0;
  if (oflags & __WASI_OFLAGS_CREAT)
    of |= WASI_FILESYSTEM_TYPES_OPEN_FLAGS_CREATE;
  if (oflags & __WASI_OFLAGS_DIRECTORY)
    of |= WASI_FILESYSTEM_TYPES_OPEN_FLAGS_DIRECTORY;
  if (oflags & __WASI_OFLAGS_EXCL)
    of |= WASI_FILESYSTEM_TYPES_OPEN_FLAGS_EXCLUSIVE;
  if (oflags & __WASI_OFLAGS_TRUNC)
    of |= WASI_FILESYSTEM_TYPES_OPEN_FLAGS_TRUNCATE;
  wasi_filesystem_types_descriptor_flags_t df = 0;
  if ((uint64_t)rights & __WASI_RIGHTS_FD_READ)
    df |= WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_READ;
  if ((uint64_t)rights & __WASI_RIGHTS_FD_WRITE)
    df |= WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_WRITE;
  if (fdflags & __WASI_FDFLAGS_SYNC)
    df |= WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_FILE_INTEGRITY_SYNC;
  if (fdflags & __WASI_FDFLAGS_DSYNC)
    df |= WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_DATA_INTEGRITY_SYNC;
  if (fdflags & __WASI_FDFLAGS_RSYNC)
    df |= WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_REQUESTED_WRITE_SYNC;
  if ((oflags & __WASI_OFLAGS_DIRECTORY) &&
      ((uint64_t)rights & (__WASI_RIGHTS_PATH_CREATE_FILE |
                           __WASI_RIGHTS_PATH_UNLINK_FILE |
                           __WASI_RIGHTS_PATH_CREATE_DIRECTORY)))
    df |= WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_MUTATE_DIRECTORY;
  hook_string_t p = text(path, path_len);
  wasi_filesystem_types_own_descriptor_t d;
  wasi_filesystem_types_error_code_t err;
  if (!wasi_filesystem_types_method_descriptor_open_at(borrow(dir), pf, &p, of,
                                                       df, &d, &err))
    return errno_of(err);
  wasi_filesystem_types_descriptor_type_t type;
  if (!wasi_filesystem_types_method_descriptor_get_type(
          wasi_filesystem_types_borrow_descriptor(d), &type, &err)) {
    wasi_filesystem_types_descriptor_drop_own(d);
    return errno_of(err);
  }
  fds[slot] = (struct fd){.kind = NODE,
                          .type = type,
                          .append = (fdflags & __WASI_FDFLAGS_APPEND) != 0,
                          .desc = d};
  *PTR(int32_t, out) = slot;
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(path_remove_directory)(int32_t fd, int32_t path, int32_t len) {
  struct fd *dir = node(fd);
  if (dir == NULL)
    return __WASI_ERRNO_BADF;
  hook_string_t p = text(path, len);
  wasi_filesystem_types_error_code_t err;
  if (!wasi_filesystem_types_method_descriptor_remove_directory_at(borrow(dir),
                                                                   &p, &err))
    return errno_of(err);
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(path_unlink_file)(int32_t fd, int32_t path, int32_t len) {
  struct fd *dir = node(fd);
  if (dir == NULL)
    return __WASI_ERRNO_BADF;
  hook_string_t p = text(path, len);
  wasi_filesystem_types_error_code_t err;
  if (!wasi_filesystem_types_method_descriptor_unlink_file_at(borrow(dir), &p,
                                                              &err))
    return errno_of(err);
  return __WASI_ERRNO_SUCCESS;
}

int32_t P1(path_rename)(int32_t fd, int32_t old_path, int32_t old_len,
                        int32_t new_fd, int32_t new_path, int32_t new_len) {
  struct fd *from = node(fd), *to = node(new_fd);
  if (from == NULL || to == NULL)
    return __WASI_ERRNO_BADF;
  hook_string_t o = text(old_path, old_len), n = text(new_path, new_len);
  wasi_filesystem_types_error_code_t err;
  if (!wasi_filesystem_types_method_descriptor_rename_at(borrow(from), &o,
                                                         borrow(to), &n, &err))
    return errno_of(err);
  return __WASI_ERRNO_SUCCESS;
}
