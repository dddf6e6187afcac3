// parse_expr: a recursive-descent parser with bounded depth and input length. Every error names
// the 1-based position where it was found.
#include <charconv>
#include <cmath>

#include "util/strformat.h"
#include "vknode/sampler/expr.h"

namespace vkn::sampler {
namespace {

constexpr size_t kMaxParamIndex = 10'000'000;
constexpr double kPi = 3.14159265358979323846;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident(char c) { return is_ident_start(c) || is_digit(c); }

class Parser {
 public:
  Parser(ExprBuilder& b, std::string_view text, const ParseOptions& o) : b_(b), s_(text), o_(o) {}

  Result<Expr> parse() {
    auto e = expr();
    if (!e) return e;
    skip();
    if (pos_ < s_.size()) return error("unexpected '" + std::string(1, s_[pos_]) + "'");
    return e;
  }

 private:
  std::unexpected<Error> error(std::string_view what) const { return error_at(what, pos_); }
  std::unexpected<Error> error_at(std::string_view what, size_t at) const {
    return fail(Errc::invalid_argument, vkn::format("expression: {} at position {}", what, at + 1));
  }

  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool eat(char c) {
    skip();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  Result<void> expect(char c) {
    if (eat(c)) return {};
    if (pos_ >= s_.size()) return error(vkn::format("expected '{}' but the text ended", c));
    return error(vkn::format("expected '{}'", c));
  }

  // Counts nesting; fails past max_depth instead of exhausting the stack.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) { ++p.depth_; }
    ~DepthGuard() { --p.depth_; }
    bool too_deep() const { return p.depth_ > p.o_.max_depth; }
  };

  Result<Expr> expr() {
    DepthGuard guard(*this);
    if (guard.too_deep()) return error("expression nested too deeply");
    auto lhs = term();
    if (!lhs) return lhs;
    Expr e = *lhs;
    for (;;) {
      if (eat('+')) {
        auto r = term();
        if (!r) return r;
        e = e + *r;
      } else if (eat('-')) {
        auto r = term();
        if (!r) return r;
        e = e - *r;
      } else {
        return e;
      }
    }
  }

  Result<Expr> term() {
    auto lhs = unary();
    if (!lhs) return lhs;
    Expr e = *lhs;
    for (;;) {
      if (eat('*')) {
        auto r = unary();
        if (!r) return r;
        e = e * *r;
      } else if (eat('/')) {
        auto r = unary();
        if (!r) return r;
        e = e / *r;
      } else {
        return e;
      }
    }
  }

  Result<Expr> unary() {
    DepthGuard guard(*this);
    if (guard.too_deep()) return error("expression nested too deeply");
    if (eat('-')) {
      auto e = unary();
      if (!e) return e;
      return -*e;
    }
    if (eat('+')) return unary();
    auto base = primary();
    if (!base) return base;
    if (eat('^')) {
      auto exponent = unary();
      if (!exponent) return exponent;
      return pow(*base, *exponent);
    }
    return base;
  }

  Result<size_t> index(std::string_view what) {
    skip();
    const size_t start = pos_;
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    size_t v = 0;
    const auto r = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (start == pos_) return error_at(vkn::format("expected the index of {}", what), start);
    if (r.ec != std::errc() || v > kMaxParamIndex) return error_at(vkn::format("index of {} too large", what), start);
    return v;
  }

  Result<Expr> number() {
    const size_t start = pos_;
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < s_.size() && (s_[p] == '+' || s_[p] == '-')) ++p;
      if (p < s_.size() && is_digit(s_[p])) {
        while (p < s_.size() && is_digit(s_[p])) ++p;
        pos_ = p;
      }
    }
    double v = 0;
    const auto r = std::from_chars(s_.data() + start, s_.data() + pos_, v);
    if (r.ec == std::errc::result_out_of_range) return error_at("number out of range", start);
    if (r.ec != std::errc() || r.ptr != s_.data() + pos_) return error_at("malformed number", start);
    return b_.constant(v);
  }

  Result<std::vector<Expr>> call_args() {
    std::vector<Expr> args;
    if (auto r = expect('('); !r) return std::unexpected(r.error());
    for (;;) {
      auto e = expr();
      if (!e) return std::unexpected(e.error());
      args.push_back(*e);
      if (eat(',')) continue;
      if (auto r = expect(')'); !r) return std::unexpected(r.error());
      return args;
    }
  }

  Result<Expr> function(std::string_view name, size_t at) {
    static constexpr std::pair<std::string_view, ExprOp> kUnary[] = {
        {"exp", ExprOp::exp},         {"log", ExprOp::log},         {"log1p", ExprOp::log1p},
        {"sqrt", ExprOp::sqrt},       {"sin", ExprOp::sin},         {"cos", ExprOp::cos},
        {"tanh", ExprOp::tanh},       {"lgamma", ExprOp::lgamma},   {"logistic", ExprOp::logistic},
        {"inv_logit", ExprOp::logistic}, {"log1p_exp", ExprOp::log1p_exp}};
    if (name == "sum") {
      skip();
      // sum(q): every parameter.
      const size_t save = pos_;
      if (eat('(') && eat('q') && eat(')')) {
        if (o_.dimension == 0) return error_at("sum(q) needs a dimension (ParseOptions::dimension)", at);
        return b_.sum(b_.params(o_.dimension));
      }
      pos_ = save;
    }
    auto args = call_args();
    if (!args) return std::unexpected(args.error());
    const size_t n = args->size();
    if (name == "sum") return b_.sum(*args);
    if (name == "pow") {
      if (n != 2) return error_at("pow takes 2 arguments", at);
      return pow((*args)[0], (*args)[1]);
    }
    if (n != 1) return error_at(vkn::format("{} takes 1 argument", name), at);
    if (name == "square") return square((*args)[0]);
    for (const auto& [fn, op] : kUnary) {
      if (fn == name) return b_.unary(op, (*args)[0]);
    }
    return error_at(vkn::format("unknown function '{}'", name), at);
  }

  Result<Expr> primary() {
    skip();
    if (pos_ >= s_.size()) return error("expected a value but the text ended");
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      auto e = expr();
      if (!e) return e;
      if (auto r = expect(')'); !r) return std::unexpected(r.error());
      return e;
    }
    if (is_digit(c) || c == '.') return number();
    if (!is_ident_start(c)) return error(vkn::format("unexpected '{}'", c));
    const size_t at = pos_;
    while (pos_ < s_.size() && is_ident(s_[pos_])) ++pos_;
    const std::string_view name = s_.substr(at, pos_ - at);
    if (name == "q") {
      if (auto r = expect('['); !r) return std::unexpected(r.error());
      auto i = index("q");
      if (!i) return std::unexpected(i.error());
      if (auto r = expect(']'); !r) return std::unexpected(r.error());
      return b_.param(*i);
    }
    if (name.size() > 1 && name[0] == 'q' && name.find_first_not_of("0123456789", 1) == std::string_view::npos) {
      size_t i = 0;
      const auto r = std::from_chars(name.data() + 1, name.data() + name.size(), i);
      if (r.ec != std::errc() || i > kMaxParamIndex) return error_at("parameter index too large", at);
      return b_.param(i);
    }
    if (name == "pi") return b_.constant(kPi);
    if (auto it = o_.data.find(name); it != o_.data.end()) {
      if (auto r = expect('['); !r) return std::unexpected(r.error());
      auto i = index(name);
      if (!i) return std::unexpected(i.error());
      if (*i >= it->second.size()) return error_at(vkn::format("index past the end of {}", name), at);
      if (auto r = expect(']'); !r) return std::unexpected(r.error());
      return b_.at(data_handle(it->first, it->second), *i);
    }
    skip();
    if (pos_ < s_.size() && s_[pos_] == '(') return function(name, at);
    return error_at(vkn::format("unknown name '{}'", name), at);
  }

  ExprData data_handle(const std::string& name, const std::vector<double>& values) {
    for (const auto& [n, h] : registered_) {
      if (n == name) return h;
    }
    registered_.emplace_back(name, b_.data(name, values));
    return registered_.back().second;
  }

  ExprBuilder& b_;
  std::string_view s_;
  const ParseOptions& o_;
  size_t pos_ = 0, depth_ = 0;
  std::vector<std::pair<std::string, ExprData>> registered_;
};

}  // namespace

Result<Expr> parse_expr(ExprBuilder& builder, std::string_view text, const ParseOptions& options) {
  if (text.size() > options.max_length) {
    return fail(Errc::invalid_argument,
                vkn::format("expression: longer than {} characters at position {}", options.max_length,
                            options.max_length + 1));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0 || c >= 0x80) {
      return fail(Errc::invalid_argument, vkn::format("expression: unexpected byte 0x{:02x} at position {}",
                                                      static_cast<unsigned>(c), i + 1));
    }
  }
  Parser parser(builder, text, options);
  auto e = parser.parse();
  if (e && builder.error()) return fail(*builder.error());
  return e;
}

}  // namespace vkn::sampler
