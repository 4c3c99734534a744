// Python's operators on interpreter values, as jinja2 evaluates them: arithmetic with int/float
// promotion and floor semantics, `~` concatenation of str() forms, comparisons, `in`, attribute
// and item access with jinja2's undefined results, and slices.
#include <cmath>
#include <stdexcept>

#include "text/jinja_eval.h"

namespace speculators::text::jinja {

void undefined_error(const Value& v) {
  throw std::runtime_error(v.s.empty() ? std::string("undefined value") : v.s);
}

namespace {

bool int_like(const Value& v) { return v.kind == Value::Kind::kInt || v.kind == Value::Kind::kBool; }
std::int64_t as_int(const Value& v) { return v.kind == Value::Kind::kBool ? v.b : v.i; }

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  throw std::runtime_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                           type_name(b) + "'");
}

Value repeat(const Value& seq, std::int64_t n) {
  constexpr std::int64_t kMaxItems = 100'000'000;
  const auto size = static_cast<std::int64_t>(seq.is_string() ? seq.s.size() : seq.list->size());
  if (n > 0 && size > 0 && n > kMaxItems / size) throw std::runtime_error("repetition too large");
  if (seq.is_string()) {
    std::string out;
    for (std::int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::string(out);
  }
  List out;
  for (std::int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  return Value::make_list(std::move(out));
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  const bool numbers = (a.is_number() || a.kind == Value::Kind::kBool) && (b.is_number() || b.kind == Value::Kind::kBool);
  if (!numbers) {
    if (op == "+" && a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (op == "+" && a.is_list() && b.is_list()) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(out));
    }
    if (op == "*" && (a.is_string() || a.is_list()) && int_like(b)) return repeat(a, as_int(b));
    if (op == "*" && (b.is_string() || b.is_list()) && int_like(a)) return repeat(b, as_int(a));
    unsupported(op, a, b);
  }
  const bool ints = int_like(a) && int_like(b);
  if (op == "/") {
    if (b.as_double() == 0) throw std::runtime_error("division by zero");
    return Value::real(a.as_double() / b.as_double());
  }
  if (ints) {  // Python's ints do not overflow; here an overflow is an error
    const std::int64_t x = as_int(a), y = as_int(b);
    std::int64_t r = 0;
    const auto overflow = [&]() -> Value { throw std::runtime_error("integer overflow in " + op); };
    if (op == "+") return __builtin_add_overflow(x, y, &r) ? overflow() : Value::integer(r);
    if (op == "-") return __builtin_sub_overflow(x, y, &r) ? overflow() : Value::integer(r);
    if (op == "*") return __builtin_mul_overflow(x, y, &r) ? overflow() : Value::integer(r);
    if (op == "//" || op == "%") {
      if (y == 0) throw std::runtime_error("integer division or modulo by zero");
      if (y == -1) return op == "%" ? Value::integer(0) : (__builtin_sub_overflow(std::int64_t{0}, x, &r) ? overflow() : Value::integer(r));
      std::int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value::integer(op == "//" ? q : x - q * y);
    }
    if (op == "**" && y >= 0) {  // by squaring, so that a large exponent is quick to overflow
      std::int64_t result = 1, base = x;
      for (std::int64_t e = y; e > 0; e >>= 1) {
        if ((e & 1) && __builtin_mul_overflow(result, base, &result)) return overflow();
        if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow();
      }
      return Value::integer(result);
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value::real(x + y);
  if (op == "-") return Value::real(x - y);
  if (op == "*") return Value::real(x * y);
  if (op == "**") return Value::real(std::pow(x, y));
  if (y == 0) throw std::runtime_error("float division by zero");
  const double q = std::floor(x / y);
  return Value::real(op == "//" ? q : x - q * y);
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string())
      throw std::runtime_error("'in <string>' requires string as left operand, not " + type_name(item));
    return container.s.find(item.s) != std::string::npos;
  }
  if (container.is_mapping()) return item.is_string() && container.find(item.s) != nullptr;
  if (container.is_list()) {
    for (const Value& v : *container.list)
      if (equal(v, item)) return true;
    return false;
  }
  if (container.is_undefined()) return false;
  throw std::runtime_error("argument of type '" + type_name(container) + "' is not iterable");
}

// Python's index normalisation for one position; false when out of range.
bool normalize_index(std::int64_t& index, std::size_t size) {
  if (index < 0) index += static_cast<std::int64_t>(size);
  return index >= 0 && index < static_cast<std::int64_t>(size);
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  if (op == "==") return Value::boolean(equal(a, b));
  if (op == "!=") return Value::boolean(!equal(a, b));
  if (op == "in") return Value::boolean(contains(b, a));
  if (op == "not in") return Value::boolean(!contains(b, a));
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    if (op == "<") return Value::boolean(less(a, b));
    if (op == ">") return Value::boolean(less(b, a));
    if (op == "<=") return Value::boolean(!less(b, a));
    return Value::boolean(!less(a, b));
  }
  return arithmetic(op, a, b);
}

Value unary_op(const std::string& op, const Value& a) {
  if (op == "not") return Value::boolean(!truthy(a));
  if (a.is_undefined()) undefined_error(a);
  if (a.kind == Value::Kind::kFloat) return Value::real(op == "-" ? -a.f : a.f);
  if (int_like(a)) return Value::integer(op == "-" ? -as_int(a) : as_int(a));
  throw std::runtime_error("bad operand type for unary " + op + ": '" + type_name(a) + "'");
}

Value get_attribute(const Value& target, const std::string& name) {
  if (target.is_undefined()) undefined_error(target);
  if (const Value* v = target.find(name)) return *v;
  return Value::undefined("'" + (target.is_mapping() ? std::string("dict object") : type_name(target) + " object") +
                          "' has no attribute '" + name + "'");
}

Value get_item(const Value& target, const Value& key) {
  if (target.is_undefined()) undefined_error(target);
  if (target.is_mapping()) {
    if (const Value* v = target.find(to_str(key))) return *v;
    return Value::undefined("'dict object' has no attribute '" + to_str(key) + "'");
  }
  if ((target.is_list() || target.is_string()) && int_like(key)) {
    std::int64_t index = as_int(key);
    if (target.is_list()) {
      if (normalize_index(index, target.list->size())) return (*target.list)[static_cast<std::size_t>(index)];
    } else {
      const std::u32string cps = decode(target.s);
      if (normalize_index(index, cps.size())) return Value::string(encode(cps.substr(static_cast<std::size_t>(index), 1)));
    }
    return Value::undefined(type_name(target) + " object has no element " + std::to_string(as_int(key)));
  }
  if (key.is_string()) return get_attribute(target, key.s);
  return Value::undefined("'" + type_name(target) + " object' has no attribute '" + to_str(key) + "'");
}

Value get_slice(const Value& target, const Value& start, const Value& stop, const Value& step) {
  auto bound = [](const Value& v, std::int64_t fallback) {
    if (v.is_undefined() || v.is_none()) return fallback;
    if (!int_like(v)) throw std::runtime_error("slice indices must be integers or None");
    return as_int(v);
  };
  const std::int64_t st = bound(step, 1);
  if (st == 0) throw std::runtime_error("slice step cannot be zero");
  std::u32string cps;
  std::int64_t n;
  if (target.is_string()) {
    cps = decode(target.s);
    n = static_cast<std::int64_t>(cps.size());
  } else if (target.is_list()) {
    n = static_cast<std::int64_t>(target.list->size());
  } else {  // jinja2's getitem turns a TypeError into an undefined value
    if (target.is_undefined()) undefined_error(target);
    return Value::undefined("'" + type_name(target) + "' object is not subscriptable");
  }
  auto clamp = [&](std::int64_t v, bool is_start) {
    if (v < 0) v += n;
    if (st > 0) return std::max<std::int64_t>(0, std::min(v, n));
    (void)is_start;
    return std::max<std::int64_t>(-1, std::min(v, n - 1));
  };
  const std::int64_t lo = start.is_undefined() || start.is_none() ? (st > 0 ? 0 : n - 1) : clamp(bound(start, 0), true);
  const std::int64_t hi = stop.is_undefined() || stop.is_none() ? (st > 0 ? n : -1) : clamp(bound(stop, 0), false);
  std::u32string out_s;
  List out_l;
  for (std::int64_t k = lo; st > 0 ? k < hi : k > hi; k += st) {
    if (target.is_string()) out_s += cps[static_cast<std::size_t>(k)];
    else out_l.push_back((*target.list)[static_cast<std::size_t>(k)]);
  }
  return target.is_string() ? Value::string(encode(out_s)) : Value::make_list(std::move(out_l));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kList: return *v.list;
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      List keys;
      for (const auto& [k, x] : *v.dict) keys.push_back(Value::string(k));
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (char32_t c : decode(v.s)) chars.push_back(Value::string(encode(std::u32string(1, c))));
      return chars;
    }
    default: throw std::runtime_error("'" + type_name(v) + "' object is not iterable");
  }
}

}  // namespace speculators::text::jinja
