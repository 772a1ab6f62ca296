/* Open-loop HTTP/1.1 load generator for bench/peers.py: latency at a fixed request rate.
 *
 * usage: peers_openloop PORT RATE SECONDS WARMUP CONNECTIONS REQUEST_FILE LATENCY_FILE
 *
 * Request k (k = 0, 1, ...) is due at start + k / RATE seconds, whatever happened to the
 * requests before it: the schedule never waits for the server (wrk waits, and so hides a
 * stall: "coordinated omission"). A due request goes out on an idle keep-alive
 * connection of CONNECTIONS, one request per connection at a time (no pipelining); when
 * none is idle it waits, and that wait counts. Its latency runs from the time it was DUE,
 * not from the time it was sent, to the last byte of its response. Idle connections take
 * requests in turn (first in, first out), so the load is spread over all of them.
 *
 * Requests due in the first WARMUP seconds are sent but not recorded; those due in the
 * SECONDS after that are. The latency (ns) of each recorded request that was answered goes
 * to LATENCY_FILE as native uint64s, in the order the answers came. On stdout, key=value
 * lines: the counts (recorded requests, answered ones, non-200 answers, connection
 * errors), the worst lateness of a send against its schedule, and the wall-clock time.
 * Every response must carry Content-Length (all the benchmark's servers send it for these
 * small bodies); anything else is a fatal error, exit status 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define BUFFER_SIZE (256 * 1024)
#define DRAIN_SECONDS 5 /* after the last send, how long answers are awaited */
#define NS 1000000000ULL

struct conn {
    int fd;
    int busy;          /* a request is out, its answer not yet whole */
    uint64_t due;      /* when that request was due (ns, CLOCK_MONOTONIC) */
    uint64_t index;    /* and its number in the schedule */
    size_t filled;     /* bytes of the answer in buf */
    char *buf;
};

static int port;
static int epoll_fd;
static char *request;
static size_t request_size;

/* The idle connections, first in first out: the one idle longest takes the next request,
 * so that the load is spread over all of them, as it is over wrk's connections. */
static struct conn **idle;
static int nconns, idle_head, nidle;

static void push_idle(struct conn *c)
{
    idle[(idle_head + nidle++) % nconns] = c;
}

static struct conn *pop_idle(void)
{
    struct conn *c = idle[idle_head];
    idle_head = (idle_head + 1) % nconns;
    nidle--;
    return c;
}

static void fail(const char *what)
{
    fprintf(stderr, "peers_openloop: %s: %s\n", what, errno ? strerror(errno) : "error");
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void open_conn(struct conn *c)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* 127.0.0.1 only, ever */
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        fail("socket");
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        fail("connect");
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl");
    c->busy = 0;
    c->filled = 0;
}

static void reopen_conn(struct conn *c)
{
    close(c->fd); /* also takes it out of the epoll set */
    open_conn(c);
}

/* The whole answer's length once its head is in, 0 while it is not; -1 if it cannot be
 * framed. *status and *closing are set with it. */
static long answer_length(const struct conn *c, int *status, int *closing)
{
    char *end = memmem(c->buf, c->filled, "\r\n\r\n", 4);
    if (end == NULL)
        return c->filled < BUFFER_SIZE ? 0 : -1;
    if (c->filled < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->buf + 9);
    *closing = 0;
    long length = -1;
    for (char *line = memmem(c->buf, (size_t)(end - c->buf), "\r\n", 2); line < end;) {
        line += 2;
        char *next = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (strncasecmp(line, "content-length:", 15) == 0)
            length = atol(line + 15);
        else if (strncasecmp(line, "connection:", 11) == 0 && memmem(line, (size_t)(next - line), "close", 5))
            *closing = 1;
        line = next;
    }
    if (length < 0)
        return -1;
    return (long)(end + 4 - c->buf) + length;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s PORT RATE SECONDS WARMUP CONNECTIONS REQUEST_FILE LATENCY_FILE\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    uint64_t rate = strtoull(argv[2], NULL, 10);
    double seconds = atof(argv[3]), warmup = atof(argv[4]);
    nconns = atoi(argv[5]);
    if (port <= 0 || rate == 0 || seconds <= 0 || warmup < 0 || nconns <= 0) {
        fprintf(stderr, "peers_openloop: bad arguments\n");
        return 2;
    }
    FILE *f = fopen(argv[6], "rb");
    if (f == NULL)
        fail(argv[6]);
    request = malloc(BUFFER_SIZE);
    request_size = fread(request, 1, BUFFER_SIZE, f);
    fclose(f);

    uint64_t first = (uint64_t)(warmup * (double)rate); /* the first recorded request */
    uint64_t total = first + (uint64_t)(seconds * (double)rate);
    uint64_t *latencies = malloc(sizeof(uint64_t) * (total - first + 1));
    uint64_t answered = 0, recorded_answers = 0, non_200 = 0, errors = 0, worst_late = 0;

    signal(SIGPIPE, SIG_IGN); /* a write to a closed connection is an error, not death */
    epoll_fd = epoll_create1(0);
    int timer = timerfd_create(CLOCK_MONOTONIC, 0);
    if (epoll_fd < 0 || timer < 0)
        fail("epoll/timerfd");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, timer, &tev);
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    idle = calloc((size_t)nconns, sizeof *idle);
    for (int i = 0; i < nconns; i++) {
        conns[i].buf = malloc(BUFFER_SIZE);
        open_conn(&conns[i]);
        push_idle(&conns[i]);
    }

    uint64_t start = now_ns() + NS / 100; /* 10 ms from now: all set up */
    uint64_t next = 0, done = 0, drain_until = 0;
    struct epoll_event events[256];
    while (done < total) {
        uint64_t now = now_ns();
        /* Send every request that is due, while a connection is idle. */
        while (next < total && nidle > 0) {
            uint64_t due = start + next * NS / rate;
            if (due > now)
                break;
            struct conn *c = pop_idle();
            if (write(c->fd, request, request_size) != (ssize_t)request_size) {
                /* The server closed this idle connection (its keep-alive timeout): send on
                 * a new one. An idle connection's send buffer is empty, so a short write
                 * means the same. */
                reopen_conn(c);
                if (write(c->fd, request, request_size) != (ssize_t)request_size) {
                    errors++;
                    done++;
                    push_idle(c);
                    next++;
                    continue;
                }
            }
            if (now - due > worst_late)
                worst_late = now - due;
            c->busy = 1;
            c->due = due;
            c->index = next++;
        }
        if (next == total && drain_until == 0)
            drain_until = now + DRAIN_SECONDS * NS;
        if (drain_until && now > drain_until)
            break;
        /* Sleep until the next request is due (if a connection can take it) or an answer. */
        struct itimerspec when = {0};
        uint64_t wake = next < total && nidle > 0 ? start + next * NS / rate : drain_until;
        if (wake) {
            when.it_value.tv_sec = (time_t)(wake / NS);
            when.it_value.tv_nsec = (long)(wake % NS);
        }
        timerfd_settime(timer, TFD_TIMER_ABSTIME, &when, NULL);
        int n = epoll_wait(epoll_fd, events, 256, -1);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait");
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                uint64_t expirations;
                if (read(timer, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                    fail("timerfd");
                continue;
            }
            ssize_t got = read(c->fd, c->buf + c->filled, BUFFER_SIZE - c->filled);
            if (got < 0 && errno == EAGAIN)
                continue; /* an event for the connection this one replaced */
            if (got <= 0) {
                /* Closed or reset: an error if a request was out, a keep-alive end if not. */
                if (c->busy) {
                    errors++;
                    done++;
                    push_idle(c);
                }
                reopen_conn(c);
                continue;
            }
            c->filled += (size_t)got;
            if (!c->busy) {
                fprintf(stderr, "peers_openloop: bytes from the server with no request out\n");
                return 2;
            }
            int status = 0, closing = 0;
            long length = answer_length(c, &status, &closing);
            if (length < 0) {
                fprintf(stderr, "peers_openloop: an answer without Content-Length: %.200s\n", c->buf);
                return 2;
            }
            if (length == 0 || c->filled < (size_t)length)
                continue;
            if (c->filled > (size_t)length) {
                fprintf(stderr, "peers_openloop: more bytes than the answer's length\n");
                return 2;
            }
            answered++;
            done++;
            if (status != 200)
                non_200++;
            if (c->index >= first)
                latencies[recorded_answers++] = now - c->due;
            c->busy = 0;
            c->filled = 0;
            if (closing)
                reopen_conn(c);
            push_idle(c);
        }
    }
    uint64_t elapsed = now_ns() - start;

    FILE *out = fopen(argv[7], "wb");
    if (out == NULL || fwrite(latencies, sizeof(uint64_t), recorded_answers, out) != recorded_answers)
        fail(argv[7]);
    fclose(out);
    printf("recorded=%llu\n", (unsigned long long)(total - first));
    printf("recorded_answered=%llu\n", (unsigned long long)recorded_answers);
    printf("sent=%llu\n", (unsigned long long)next);
    printf("answered=%llu\n", (unsigned long long)answered);
    printf("non_200=%llu\n", (unsigned long long)non_200);
    printf("errors=%llu\n", (unsigned long long)errors);
    printf("worst_late_ns=%llu\n", (unsigned long long)worst_late);
    printf("elapsed_ns=%llu\n", (unsigned long long)elapsed);
    return 0;
}
