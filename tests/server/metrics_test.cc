// Metrics (counters and their exposition) and MetricsEndpoint (the HTTP responder).
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <chrono>

#include "http_get.h"
#include "server/metrics_endpoint.h"

namespace vkn::server::testing {
namespace {

using protocol::MessageType;
using std::chrono::milliseconds;

TEST(MetricsTest, CountsRequestsErrorsAndLatencyInValidExposition) {
  Metrics m;
  m.record(MessageType::exec, Errc::ok, milliseconds(2));
  m.record(MessageType::exec, Errc::not_found, milliseconds(20));
  m.record(MessageType::ping, Errc::ok, std::chrono::microseconds(50));
  PrometheusText out;
  m.render(out);
  std::map<std::string, double> s;
  const std::string problem = check_exposition(out.text(), &s);
  ASSERT_EQ(problem, "") << out.text();
  EXPECT_EQ(s["vknode_requests_total{type=\"exec\"}"], 2);
  EXPECT_EQ(s["vknode_requests_total{type=\"ping\"}"], 1);
  EXPECT_EQ(s["vknode_requests_total{type=\"status\"}"], 0);
  EXPECT_EQ(s["vknode_request_errors_total{code=\"not_found\"}"], 1);
  EXPECT_EQ(s["vknode_request_errors_total{code=\"node_timeout\"}"], 0);
  EXPECT_EQ(s.count("vknode_request_errors_total{code=\"ok\"}"), 0u);
  // Cumulative buckets: 50 us, 2 ms and 20 ms.
  EXPECT_EQ(s["vknode_request_duration_seconds_bucket{le=\"0.0001\"}"], 1);
  EXPECT_EQ(s["vknode_request_duration_seconds_bucket{le=\"0.0025\"}"], 2);
  EXPECT_EQ(s["vknode_request_duration_seconds_bucket{le=\"0.01\"}"], 2);
  EXPECT_EQ(s["vknode_request_duration_seconds_bucket{le=\"0.025\"}"], 3);
  EXPECT_EQ(s["vknode_request_duration_seconds_bucket{le=\"+Inf\"}"], 3);
  EXPECT_EQ(s["vknode_request_duration_seconds_count"], 3);
  EXPECT_NEAR(s["vknode_request_duration_seconds_sum"], 0.02205, 1e-9);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(PrometheusText::label("name", "a\"b\\c\nd"), "name=\"a\\\"b\\\\c\\nd\"");
  PrometheusText out;
  out.family("x", "gauge", "h");
  out.sample("x", PrometheusText::label("name", "q\"uote"), 1.5);
  EXPECT_EQ(check_exposition(out.text(), nullptr), "") << out.text();
}

TEST(MetricsTest, CheckerRejectsSamplesWithoutType) {
  // The checker the daemon tests rely on must itself catch these.
  EXPECT_NE(check_exposition("x 1\n", nullptr), "");
  EXPECT_NE(check_exposition("# TYPE 1x counter\n1x 1\n", nullptr), "");
  EXPECT_NE(check_exposition("# TYPE x counter\nx one\n", nullptr), "");
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = MetricsEndpoint::start(0, [] { return std::string("# TYPE up gauge\nup 1\n"); });
    ASSERT_TRUE(e) << e.error().to_string();
    endpoint_ = std::move(*e);
    ASSERT_NE(endpoint_->port(), 0);
  }
  std::unique_ptr<MetricsEndpoint> endpoint_;
};

TEST_F(MetricsEndpointTest, GetMetricsIsAnsweredWithTheTextFormat) {
  auto r = http_get(endpoint_->port(), "/metrics");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->starts_with("HTTP/1.1 200 OK\r\n")) << *r;
  EXPECT_NE(r->find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << *r;
  EXPECT_NE(r->find("Content-Length: 21\r\n"), std::string::npos) << *r;
  EXPECT_EQ(http_body(*r), "# TYPE up gauge\nup 1\n");
}

TEST_F(MetricsEndpointTest, EverythingElseIsNotFoundOrBadRequest) {
  for (const char* path : {"/", "/metrics/", "/metricsx", "/other"}) {
    auto r = http_get(endpoint_->port(), path);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->starts_with("HTTP/1.1 404 ")) << path << ": " << *r;
  }
  auto post = http_exchange(endpoint_->port(), "POST /metrics HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(post);
  EXPECT_TRUE(post->starts_with("HTTP/1.1 404 ")) << *post;
  auto junk = http_exchange(endpoint_->port(), "hello\r\n\r\n");
  ASSERT_TRUE(junk);
  EXPECT_TRUE(junk->starts_with("HTTP/1.1 400 ")) << *junk;
  auto huge = http_exchange(endpoint_->port(),
                            "GET /metrics HTTP/1.1\r\nX: " + std::string(20000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(huge);
  EXPECT_TRUE(huge->starts_with("HTTP/1.1 431 ")) << huge->substr(0, 100);
}

TEST_F(MetricsEndpointTest, ASilentClientIsDroppedAtItsDeadline) {
  // A connection that never sends must not keep the endpoint from the next scraper.
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(endpoint_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const auto start = std::chrono::steady_clock::now();
  auto r = http_get(endpoint_->port(), "/metrics");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->starts_with("HTTP/1.1 200 OK")) << *r;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ::close(silent);
}

TEST_F(MetricsEndpointTest, ATakenPortIsAnIoError) {
  auto second = MetricsEndpoint::start(endpoint_->port(), [] { return std::string(); });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Errc::io_error);
}

}  // namespace
}  // namespace vkn::server::testing
