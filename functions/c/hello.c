/*
 * hello-c: the wisp action ABI from C, to show it is not Rust-only.
 *
 * Reads the parameters (one JSON object) from stdin, logs one line to stderr, and prints
 * {"greeting":"Hello from C, <name>!"} as the last stdout line; <name> is the top-level string
 * parameter "name" (default "stranger"). Parameters that are not a JSON object give the
 * application error {"error":"..."}.
 *
 * Build (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32):
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -o hello-c.wasm hello.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char *data;
    size_t len, cap;
};

static int push(struct buf *b, char c) {
    if (b->len + 1 >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        char *data = realloc(b->data, cap);
        if (!data)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
}

static int push_utf8(struct buf *b, unsigned long cp) {
    if (cp < 0x80)
        return push(b, (char)cp);
    if (cp < 0x800)
        return push(b, (char)(0xC0 | (cp >> 6))) || push(b, (char)(0x80 | (cp & 0x3F)));
    if (cp < 0x10000)
        return push(b, (char)(0xE0 | (cp >> 12))) || push(b, (char)(0x80 | ((cp >> 6) & 0x3F))) ||
               push(b, (char)(0x80 | (cp & 0x3F)));
    return push(b, (char)(0xF0 | (cp >> 18))) || push(b, (char)(0x80 | ((cp >> 12) & 0x3F))) ||
           push(b, (char)(0x80 | ((cp >> 6) & 0x3F))) || push(b, (char)(0x80 | (cp & 0x3F)));
}

/* A cursor over the input. */
struct parser {
    const char *s, *end;
};

static void skip_ws(struct parser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int hex4(struct parser *p, unsigned long *out) {
    unsigned long v = 0;
    for (int i = 0; i < 4; i++) {
        if (p->s >= p->end)
            return -1;
        char c = *p->s++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned long)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Parses a JSON string at the cursor into out (decoded, UTF-8). */
static int parse_string(struct parser *p, struct buf *out) {
    if (p->s >= p->end || *p->s != '"')
        return -1;
    p->s++;
    while (p->s < p->end) {
        char c = *p->s++;
        if (c == '"')
            return 0;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c != '\\') {
            if (push(out, c))
                return -1;
            continue;
        }
        if (p->s >= p->end)
            return -1;
        char e = *p->s++;
        unsigned long cp;
        switch (e) {
        case '"': case '\\': case '/': cp = (unsigned long)e; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (hex4(p, &cp))
                return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned long lo;
                if (p->end - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u')
                    return -1;
                p->s += 2;
                if (hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            break;
        default:
            return -1;
        }
        if (push_utf8(out, cp))
            return -1;
    }
    return -1;
}

/* Skips one JSON value: stops before the ',' or '}' that follows it at the top level
 * (strings are respected and nesting balanced; scalars are not validated). */
static int skip_value(struct parser *p) {
    int depth = 0;
    while (p->s < p->end) {
        char c = *p->s;
        if (c == '"') {
            struct buf scratch = {0};
            int r = parse_string(p, &scratch);
            free(scratch.data);
            if (r)
                return -1;
            continue;
        }
        if (depth == 0 && (c == ',' || c == '}' || c == ']'))
            return 0;
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        p->s++;
    }
    return -1; /* the object was never closed */
}

/* Finds the top-level string "name". Returns 1 if found, 0 if absent, -1 if not an object. */
static int find_name(const char *json, size_t len, struct buf *name) {
    struct parser p = {json, json + len};
    skip_ws(&p);
    if (p.s == p.end)
        return 0; /* empty stdin = {} */
    if (*p.s != '{')
        return -1;
    p.s++;
    skip_ws(&p);
    if (p.s < p.end && *p.s == '}')
        return 0;
    for (;;) {
        struct buf key = {0};
        skip_ws(&p);
        int r = parse_string(&p, &key);
        int is_name = r == 0 && key.data && strcmp(key.data, "name") == 0;
        free(key.data);
        if (r)
            return -1;
        skip_ws(&p);
        if (p.s >= p.end || *p.s != ':')
            return -1;
        p.s++;
        skip_ws(&p);
        if (is_name && p.s < p.end && *p.s == '"') {
            name->len = 0;
            if (parse_string(&p, name))
                return -1;
            return name->len > 0;
        }
        if (skip_value(&p))
            return -1;
        skip_ws(&p);
        if (p.s < p.end && *p.s == ',') {
            p.s++;
            continue;
        }
        return (p.s < p.end && *p.s == '}') ? 0 : -1;
    }
}

/* Writes s as the contents of a JSON string. */
static void put_json_string(const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
}

int main(void) {
    struct buf input = {0};
    int c;
    while ((c = getchar()) != EOF) {
        if (push(&input, (char)c)) {
            puts("{\"error\":\"out of memory reading the parameters\"}");
            return 0;
        }
    }
    struct buf name = {0};
    int found = find_name(input.data ? input.data : "", input.len, &name);
    if (found < 0) {
        fprintf(stderr, "hello-c: the parameters are not a JSON object\n");
        puts("{\"error\":\"invalid parameters: expected a JSON object\"}");
        return 0;
    }
    const char *who = found ? name.data : "stranger";
    fprintf(stderr, "hello-c: greeting %s\n", who);
    fputs("{\"greeting\":\"Hello from C, ", stdout);
    put_json_string(who);
    puts("!\"}");
    fflush(stdout);
    free(input.data);
    free(name.data);
    return 0;
}
