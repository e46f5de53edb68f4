/* Timeouts with a virtual clock: the deadline lists (deadline.c) and the
 * dispatcher's timeout decisions (lh_disp_timer_kind, lh_disp_timeout),
 * driven the way server.c drives them, without libuv. */
#include "deadline.h"
#include "mock_io.h"
#include "test.h"

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"
#define HEAD_T 30.0
#define IDLE_T 60.0

/* one connection of a virtual server: what server.c keeps per connection */
typedef struct {
  mock_t m;
  lh_dnode_t node;
  uint32_t armed_served;
} vconn_t;

static double now;
static lh_deadlines_t dl;

/* server.c lh_sconn_timer_update, with the virtual clock */
static void update(vconn_t *v) {
  int kind = lh_disp_timer_kind(&v->m.d);
  if (kind == v->node.kind && (kind != LH_DL_HEAD || v->armed_served == v->m.d.served)) return;
  v->armed_served = v->m.d.served;
  if (kind == LH_DL_NONE) lh_dl_remove(&dl, &v->node);
  else lh_dl_append(&dl, &v->node, kind, now + (kind == LH_DL_HEAD ? HEAD_T : IDLE_T));
}

/* the server's timer firing at time t */
static int advance(vconn_t *v, double t) {
  int fired = 0, kind;
  lh_dnode_t *n;
  now = t;
  while ((n = lh_dl_pop_due(&dl, now, &kind))) {
    vconn_t *c = (vconn_t *)((char *)n - offsetof(vconn_t, node));
    lh_disp_timeout(&c->m.d, kind);
    fired++;
  }
  if (v) update(v);
  return fired;
}

static void vstart(vconn_t *v, mock_mode_t mode) {
  memset(&dl, 0, sizeof dl);
  now = 100.0;
  memset(v, 0, sizeof *v);
  lh_conn_opts_t o = mock_opts();
  mock_init(&v->m, &o);
  v->m.mode = mode;
  update(v);
}

static void vfeed(vconn_t *v, const char *s) {
  mock_feed_str(&v->m, s, 0);
  update(v);
}

static int out_has(vconn_t *v, const char *s) {
  size_t n = strlen(s);
  for (size_t i = 0; i + n <= v->m.out.n; i++)
    if (memcmp(v->m.out.p + i, s, n) == 0) return 1;
  return 0;
}

static void deadline_lists_hand_out_entries_in_due_order(void) {
  lh_deadlines_t d;
  lh_dnode_t a = {0}, b = {0}, c = {0}, e = {0};
  int kind;
  memset(&d, 0, sizeof d);
  CHECK(lh_dl_next(&d) == 0);
  lh_dl_append(&d, &a, LH_DL_HEAD, 10);
  lh_dl_append(&d, &b, LH_DL_HEAD, 20);
  lh_dl_append(&d, &c, LH_DL_IDLE, 15);
  lh_dl_append(&d, &e, LH_DL_LINGER, 5);
  CHECK(lh_dl_next(&d) == 5);
  CHECK(lh_dl_pop_due(&d, 4, &kind) == NULL);
  /* everything due by 12, whatever its list: a and e */
  lh_dnode_t *x = lh_dl_pop_due(&d, 12, &kind), *y = lh_dl_pop_due(&d, 12, &kind);
  CHECK((x == &a && y == &e) || (x == &e && y == &a));
  CHECK(lh_dl_pop_due(&d, 12, &kind) == NULL);
  lh_dl_remove(&d, &c);
  CHECK_EQ(c.kind, LH_DL_NONE);
  CHECK(lh_dl_next(&d) == 20);
  lh_dl_remove(&d, &c); /* not on a list: nothing happens */
  lh_dl_append(&d, &b, LH_DL_IDLE, 30); /* moving between lists */
  CHECK(d.head[LH_DL_HEAD] == NULL);
  CHECK(lh_dl_pop_due(&d, 30, &kind) == &b);
  CHECK_EQ(kind, LH_DL_IDLE);
  CHECK(lh_dl_next(&d) == 0);
}

static void fresh_connection_waits_under_the_head_deadline(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_SYNC);
  CHECK_EQ(v.node.kind, LH_DL_HEAD);
  CHECK(v.node.at == 100.0 + HEAD_T);
  mock_free(&v.m);
}

static void silent_connection_is_closed_quietly(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_SYNC);
  CHECK_EQ(advance(&v, 100.0 + HEAD_T - 0.001), 0);
  CHECK_EQ(v.m.close_calls, 0);
  CHECK_EQ(advance(&v, 100.0 + HEAD_T), 1);
  CHECK_EQ(v.m.close_calls, 1);
  CHECK_EQ(v.m.out.n, 0);
  CHECK_EQ(v.m.on_error_calls, 0);
  mock_free(&v.m);
}

static void partial_head_gets_408_then_close(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_SYNC);
  vfeed(&v, "GET / HTTP/1.1\r\nHo");
  CHECK_EQ(advance(&v, 100.0 + HEAD_T), 1);
  CHECK(out_has(&v, "HTTP/1.1 408 Request Timeout\r\n"));
  CHECK(out_has(&v, "connection: close\r\n"));
  CHECK_EQ(v.m.close_calls, 1);
  CHECK_EQ(v.m.last_error, LH_EHEADER_TIMEOUT);
  CHECK_EQ(v.m.nrecv, 0);
  mock_free(&v.m);
}

static void dripping_bytes_do_not_extend_the_head_deadline(void) {
  vconn_t v;
  static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n";
  vstart(&v, MOCK_ANSWER_SYNC);
  /* a byte every second: slowloris */
  for (int i = 0; i < (int)HEAD_T - 1; i++) {
    CHECK_EQ(advance(&v, 100.0 + i), 0);
    mock_feed(&v.m, req + i, 1);
    update(&v);
  }
  CHECK(v.node.at == 100.0 + HEAD_T);
  CHECK_EQ(advance(&v, 100.0 + HEAD_T), 1);
  CHECK(out_has(&v, " 408 "));
  CHECK_EQ(v.m.close_calls, 1);
  CHECK_EQ(v.m.nrecv, 0);
  mock_free(&v.m);
}

static void answered_connection_moves_to_the_idle_deadline(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_SYNC);
  now = 110.0;
  vfeed(&v, GET("/a"));
  CHECK_EQ(v.m.nrecv, 1);
  CHECK_EQ(v.node.kind, LH_DL_IDLE);
  CHECK(v.node.at == 110.0 + IDLE_T);
  /* the old head deadline does not fire */
  CHECK_EQ(advance(&v, 100.0 + HEAD_T + 1), 0);
  CHECK_EQ(v.m.close_calls, 0);
  size_t out = v.m.out.n;
  CHECK_EQ(advance(&v, 110.0 + IDLE_T), 1);
  CHECK_EQ(v.m.close_calls, 1);
  CHECK_EQ(v.m.out.n, out); /* nothing more written */
  mock_free(&v.m);
}

static void busy_connection_has_no_deadline(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_LATER);
  vfeed(&v, GET("/busy"));
  CHECK_EQ(v.m.nrecv, 1);
  CHECK_EQ(v.node.kind, LH_DL_NONE);
  CHECK_EQ(advance(&v, 100.0 + HEAD_T + IDLE_T + 10), 0);
  CHECK_EQ(v.m.close_calls, 0);
  mock_answer(&v.m);
  lh_disp_poll(&v.m.d);
  update(&v);
  CHECK_EQ(v.node.kind, LH_DL_IDLE);
  CHECK(v.node.at == now + IDLE_T);
  mock_free(&v.m);
}

static void bytes_on_an_idle_connection_start_a_new_head_deadline(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_SYNC);
  vfeed(&v, GET("/a"));
  CHECK_EQ(v.node.kind, LH_DL_IDLE);
  now = 150.0;
  vfeed(&v, "GET /b HTT");
  CHECK_EQ(v.node.kind, LH_DL_HEAD);
  CHECK(v.node.at == 150.0 + HEAD_T);
  CHECK_EQ(advance(&v, 150.0 + HEAD_T), 1);
  CHECK(out_has(&v, " 408 "));
  mock_free(&v.m);
}

static void pipelined_heads_each_get_their_own_deadline(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_LATER);
  now = 120.0;
  vfeed(&v, GET("/a") "GET /b HT");
  CHECK_EQ(v.m.nrecv, 1);
  CHECK_EQ(v.node.kind, LH_DL_NONE);
  now = 125.0;
  mock_answer(&v.m);
  lh_disp_poll(&v.m.d);
  update(&v);
  /* the partial second head is due from when its wait began */
  CHECK_EQ(v.node.kind, LH_DL_HEAD);
  CHECK(v.node.at == 125.0 + HEAD_T);
  mock_free(&v.m);
}

static void head_held_by_the_service_has_no_deadline(void) {
  vconn_t v;
  vstart(&v, MOCK_ANSWER_SYNC);
  v.m.ready = 0; /* max_in_flight reached */
  vfeed(&v, GET("/held"));
  CHECK_EQ(v.m.nrecv, 0);
  CHECK_EQ(v.node.kind, LH_DL_NONE);
  CHECK_EQ(advance(&v, 100.0 + HEAD_T + 1), 0);
  CHECK_EQ(v.m.close_calls, 0);
  v.m.ready = 1;
  lh_disp_poll(&v.m.d);
  update(&v);
  CHECK_EQ(v.m.nrecv, 1);
  CHECK_EQ(v.node.kind, LH_DL_IDLE);
  mock_free(&v.m);
}

int main(void) {
  guard_init();
  lh_date_freeze(0);
  static const test_case_t tests[] = {
    TEST_CASE(deadline_lists_hand_out_entries_in_due_order),
    TEST_CASE(fresh_connection_waits_under_the_head_deadline),
    TEST_CASE(silent_connection_is_closed_quietly),
    TEST_CASE(partial_head_gets_408_then_close),
    TEST_CASE(dripping_bytes_do_not_extend_the_head_deadline),
    TEST_CASE(answered_connection_moves_to_the_idle_deadline),
    TEST_CASE(busy_connection_has_no_deadline),
    TEST_CASE(bytes_on_an_idle_connection_start_a_new_head_deadline),
    TEST_CASE(pipelined_heads_each_get_their_own_deadline),
    TEST_CASE(head_held_by_the_service_has_no_deadline),
  };
  return T_RUN(tests);
}
