/*
 * count: the polyglot example's C task. Counts how often each word occurs in
 * the input `words` (one word per line) and writes the most frequent ones to
 * the output `counts` as tab-separated `count<TAB>word` lines, most frequent
 * first (ties alphabetical), after a `#total<TAB>N<TAB>distinct<TAB>M` line.
 *
 * It is a plain WASI command: Cairn gives it its inputs as read-only files
 * under /inputs and collects the files it writes under /outputs. It sees no
 * other file, no environment it was not given, and no network.
 *
 * Usage (as the manifest's `args`): count [--top N]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *word;
    unsigned long count;
};

struct table {
    struct entry *slots;
    size_t size; /* a power of two */
    size_t used;
};

static uint32_t hash(const char *s) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static int grow(struct table *t);

/* Adds one occurrence of `word`; returns 0, or -1 when out of memory. */
static int add(struct table *t, const char *word) {
    if ((t->used + 1) * 2 > t->size && grow(t) != 0) {
        return -1;
    }
    size_t i = hash(word) & (t->size - 1);
    while (t->slots[i].word != NULL) {
        if (strcmp(t->slots[i].word, word) == 0) {
            t->slots[i].count++;
            return 0;
        }
        i = (i + 1) & (t->size - 1);
    }
    t->slots[i].word = strdup(word);
    if (t->slots[i].word == NULL) {
        return -1;
    }
    t->slots[i].count = 1;
    t->used++;
    return 0;
}

static int grow(struct table *t) {
    size_t size = t->size ? t->size * 2 : 1024;
    struct entry *slots = calloc(size, sizeof *slots);
    if (slots == NULL) {
        return -1;
    }
    struct table bigger = {slots, size, 0};
    for (size_t i = 0; i < t->size; i++) {
        struct entry *e = &t->slots[i];
        if (e->word != NULL) {
            size_t j = hash(e->word) & (size - 1);
            while (slots[j].word != NULL) {
                j = (j + 1) & (size - 1);
            }
            slots[j] = *e;
            bigger.used++;
        }
    }
    free(t->slots);
    *t = bigger;
    return 0;
}

static int by_count(const void *a, const void *b) {
    const struct entry *x = a, *y = b;
    if (x->count != y->count) {
        return x->count < y->count ? 1 : -1;
    }
    return strcmp(x->word, y->word);
}

int main(int argc, char **argv) {
    long top = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--top") == 0 && i + 1 < argc) {
            char *end;
            top = strtol(argv[++i], &end, 10);
            if (*end != '\0' || top < 1) {
                fprintf(stderr, "count: --top wants a positive number, not `%s`\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "count: unknown argument `%s`; usage: count [--top N]\n", argv[i]);
            return 2;
        }
    }

    FILE *in = fopen("/inputs/words", "r");
    if (in == NULL) {
        fprintf(stderr, "count: cannot open /inputs/words: %s (is the input `words` given?)\n",
                strerror(errno));
        return 1;
    }
    struct table t = {NULL, 0, 0};
    unsigned long total = 0;
    char line[256];
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') {
            continue;
        }
        if (add(&t, line) != 0) {
            fprintf(stderr, "count: out of memory after %lu words\n", total);
            return 1;
        }
        total++;
    }
    fclose(in);

    /* Pack the used slots to the front and sort them. */
    size_t n = 0;
    for (size_t i = 0; i < t.size; i++) {
        if (t.slots[i].word != NULL) {
            t.slots[n++] = t.slots[i];
        }
    }
    qsort(t.slots, n, sizeof *t.slots, by_count);

    FILE *out = fopen("/outputs/counts", "w");
    if (out == NULL) {
        fprintf(stderr, "count: cannot create /outputs/counts: %s\n", strerror(errno));
        return 1;
    }
    fprintf(out, "#total\t%lu\tdistinct\t%zu\n", total, n);
    for (size_t i = 0; i < n && i < (size_t)top; i++) {
        fprintf(out, "%lu\t%s\n", t.slots[i].count, t.slots[i].word);
    }
    if (fclose(out) != 0) {
        fprintf(stderr, "count: cannot write /outputs/counts: %s\n", strerror(errno));
        return 1;
    }
    printf("counted %lu words, %zu distinct; wrote the top %ld\n", total, n, top);
    return 0;
}
