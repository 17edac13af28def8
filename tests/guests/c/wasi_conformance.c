/* What a WASI program expects of its host, checked step by step; prints
 * the same lines as tests/guests/command/src/bin/wasi_conformance.rs (see
 * there for the files it expects), then exits with argv[1]. Built for
 * wasm32-wasip1 (a core module) and wasm32-wasip2 (a component) by the
 * end-to-end tests. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ok(int r) { return r == 0 ? "ok" : "err"; }

static int read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        buf[0] = 0;
        return -1;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return (int)n;
}

static int write_file(const char *path, const char *text, const char *mode) {
    FILE *f = fopen(path, mode);
    if (!f) return -1;
    int bad = fputs(text, f) < 0;
    return (fclose(f) != 0 || bad) ? -1 : 0;
}

/* Rust's {:?} of a string, for the simple texts used here. */
static void quoted(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '\n') fputs("\\n", stdout);
        else if (*s == '"') fputs("\\\"", stdout);
        else putchar(*s);
    }
    putchar('"');
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void ls(const char *dir) {
    char *names[64];
    int n = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && n < 64) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
        }
        closedir(d);
    }
    qsort(names, n, sizeof names[0], cmp);
    printf("ls %s", dir);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    putchar('\n');
}

int main(int argc, char **argv) {
    char buf[256];
    struct stat st;

    printf("args");
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    putchar('\n');
    const char *foo = getenv("FOO");
    printf("env FOO=%s\n", foo ? foo : "");

    int n = read_file("/hello.txt", buf, sizeof buf);
    printf("read /hello.txt %d ", n < 0 ? 0 : n);
    quoted(buf);
    putchar('\n');
    read_file("hello.txt", buf, sizeof buf);
    printf("read hello.txt ");
    quoted(buf);
    putchar('\n');
    printf("read sub/../hello.txt %s\n", ok(read_file("sub/../hello.txt", buf, sizeof buf) < 0 ? -1 : 0));

    int fd = open("/hello.txt", O_RDONLY);
    off_t pos = lseek(fd, 6, SEEK_SET);
    char word[6] = {0};
    int got = read(fd, word, 5) == 5;
    printf("seek 6 -> %lld read ", (long long)pos);
    quoted(word);
    printf(" %s\n", got ? "true" : "false");
    printf("seek end-1 -> %lld\n", (long long)lseek(fd, -1, SEEK_END));
    printf("seek cur-5 -> %lld\n", (long long)lseek(fd, -5, SEEK_CUR));
    close(fd);

    ls("/");
    ls("/sub");

    printf("mkdir /made %s\n", ok(mkdir("/made", 0755)));
    printf("write /made/f.txt %s\n", ok(write_file("/made/f.txt", "abc", "wb")));
    printf("size /made/f.txt %lld\n", stat("/made/f.txt", &st) == 0 ? (long long)st.st_size : 0LL);
    int appended = write_file("/made/f.txt", "def", "ab");
    read_file("/made/f.txt", buf, sizeof buf);
    printf("append %s -> ", ok(appended));
    quoted(buf);
    putchar('\n');
    printf("rename %s\n", ok(rename("/made/f.txt", "/made/g.txt")));
    printf("exists f %s g %s\n", stat("/made/f.txt", &st) == 0 ? "true" : "false",
           stat("/made/g.txt", &st) == 0 ? "true" : "false");
    printf("remove %s\n", ok(unlink("/made/g.txt")));
    printf("rmdir %s\n", ok(rmdir("/made")));

    ssize_t len = readlink("/link.txt", buf, sizeof buf - 1);
    buf[len < 0 ? 0 : len] = 0;
    printf("readlink /link.txt ");
    quoted(buf);
    putchar('\n');
    read_file("/link.txt", buf, sizeof buf);
    printf("read /link.txt ");
    quoted(buf);
    putchar('\n');
    printf("is_symlink %s\n", lstat("/link.txt", &st) == 0 && S_ISLNK(st.st_mode) ? "true" : "false");
    printf("symlink /made-link %s\n", ok(symlink("hello.txt", "/made-link")));
    read_file("/made-link", buf, sizeof buf);
    printf("read /made-link ");
    quoted(buf);
    putchar('\n');
    printf("remove /made-link %s\n", ok(unlink("/made-link")));
    printf("read /escape/etc/passwd %s\n", ok(read_file("/escape/etc/passwd", buf, sizeof buf) < 0 ? -1 : 0));
    printf("read /../hello.txt %s\n", ok(read_file("/../hello.txt", buf, sizeof buf) < 0 ? -1 : 0));

    read_file("/inputs/data", buf, sizeof buf);
    printf("read /inputs/data ");
    quoted(buf);
    putchar('\n');
    printf("write /inputs/x %s\n", ok(write_file("/inputs/x", "no", "wb")));
    printf("write /outputs/result %s\n", ok(write_file("/outputs/result", "done\n", "wb")));

    int code = argc > 1 ? atoi(argv[1]) : 0;
    printf("exit %d\n", code);
    fflush(stdout);
    exit(code);
}
