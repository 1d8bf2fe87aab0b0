#include "psearch/checkpoint/pickle_machine.h"

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace psearch::checkpoint::pickle {
namespace {

using Kind = Value::Kind;

/// Reads and interprets one pickle stream. The state mirrors CPython's unpickler:
/// a value stack, a stack of MARK positions and the memo.
class Machine {
 public:
  Machine(const std::string& data, const Hooks& hooks) : data_(data), hooks_(hooks) {}

  ValuePtr run() {
    while (true) {
      if (pos_ >= data_.size()) fail("stream ended before STOP");
      const auto op = static_cast<uint8_t>(data_[pos_++]);
      if (op == '.') break;  // STOP
      step(op);
    }
    if (stack_.size() != 1) fail("STOP with " + std::to_string(stack_.size()) + " values on the stack");
    return stack_.back();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("pickle: " + what + " (at byte " + std::to_string(pos_) + ")");
  }

  const char* take(size_t n) {
    if (n > data_.size() - pos_) fail("truncated stream");
    const char* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T read_le() {  // pickle stores fixed-size integers little-endian, as x86 does
    T v;
    std::memcpy(&v, take(sizeof(T)), sizeof(T));
    return v;
  }
  std::string read_line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos) fail("unterminated GLOBAL");
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  ValuePtr pop() {
    if (stack_.empty()) fail("pop from an empty stack");
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.empty()) fail("empty stack");
    return stack_.back();
  }
  /// Pops everything pushed since the last MARK.
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
    stack_.resize(start);
    return items;
  }
  ValuePtr tuple(std::vector<ValuePtr> items) {
    auto t = Value::make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  void memo_put(uint32_t index) { memo_[index] = top(); }
  void memo_get(uint32_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo key " + std::to_string(index) + " not found");
    stack_.push_back(it->second);
  }
  void push_string(Kind kind, size_t n) {
    auto v = Value::make(kind);
    v->text.assign(take(n), n);
    stack_.push_back(v);
  }
  /// LONG1/LONG4: little-endian two's complement of any length; checkpoints only hold
  /// values that fit 64 bits.
  void push_long(size_t n) {
    if (n > 8) fail("integer wider than 64 bits");
    const char* p = take(n);
    uint64_t u = 0;
    for (size_t i = 0; i < n; ++i) u |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(p[n - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * n);
    stack_.push_back(Value::make_int(static_cast<int64_t>(u)));
  }
  void set_items(const ValuePtr& dict, const std::vector<ValuePtr>& kv) {
    if (dict->kind != Kind::Dict) fail("SETITEMS on a non-dict");
    if (kv.size() % 2) fail("SETITEMS with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) dict->entries.emplace_back(kv[i], kv[i + 1]);
  }
  void call(const ValuePtr& args) {
    ValuePtr callable = pop();
    if (callable->kind != Kind::Global) fail("REDUCE on a value that is not a global");
    stack_.push_back(hooks_.call(callable, args));
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: take(1); break;                     // PROTO
      case 0x95: take(8); break;                     // FRAME: framing is only a read hint
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case 'N': stack_.push_back(Value::make(Kind::None)); break;
      case 0x88: case 0x89: {                        // NEWTRUE / NEWFALSE
        auto v = Value::make(Kind::Bool);
        v->boolean = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'J': stack_.push_back(Value::make_int(read_le<int32_t>())); break;   // BININT
      case 'K': stack_.push_back(Value::make_int(read_le<uint8_t>())); break;   // BININT1
      case 'M': stack_.push_back(Value::make_int(read_le<uint16_t>())); break;  // BININT2
      case 0x8a: push_long(read_le<uint8_t>()); break;                          // LONG1
      case 0x8b: push_long(read_le<uint32_t>()); break;                         // LONG4
      case 'G': {                                    // BINFLOAT: big-endian double
        const char* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(p[i]);
        auto v = Value::make(Kind::Float);
        std::memcpy(&v->real, &bits, sizeof(double));
        stack_.push_back(v);
        break;
      }
      case 'X': push_string(Kind::String, read_le<uint32_t>()); break;   // BINUNICODE
      case 0x8c: push_string(Kind::String, read_le<uint8_t>()); break;   // SHORT_BINUNICODE
      case 0x8d: push_string(Kind::String, read_le<uint64_t>()); break;  // BINUNICODE8
      case 'U': push_string(Kind::String, read_le<uint8_t>()); break;    // SHORT_BINSTRING
      case 'T': push_string(Kind::String, read_le<uint32_t>()); break;   // BINSTRING
      case 'C': push_string(Kind::Bytes, read_le<uint8_t>()); break;     // SHORT_BINBYTES
      case 'B': push_string(Kind::Bytes, read_le<uint32_t>()); break;    // BINBYTES
      case '}': stack_.push_back(Value::make(Kind::Dict)); break;        // EMPTY_DICT
      case ']': stack_.push_back(Value::make(Kind::List)); break;        // EMPTY_LIST
      case ')': stack_.push_back(tuple({})); break;                      // EMPTY_TUPLE
      case 't': stack_.push_back(tuple(pop_mark())); break;              // TUPLE
      case 0x85: case 0x86: case 0x87: {                                 // TUPLE1..3
        const size_t n = op - 0x84;
        if (stack_.size() < n) fail("TUPLE" + std::to_string(n) + " on a short stack");
        std::vector<ValuePtr> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        stack_.push_back(tuple(std::move(items)));
        break;
      }
      case 'l': {                                    // LIST
        auto v = Value::make(Kind::List);
        v->items = pop_mark();
        stack_.push_back(v);
        break;
      }
      case 'd': {                                    // DICT
        auto v = Value::make(Kind::Dict);
        set_items(v, pop_mark());
        stack_.push_back(v);
        break;
      }
      case 'a': {                                    // APPEND
        ValuePtr item = pop();
        if (top()->kind != Kind::List) fail("APPEND to a non-list");
        top()->items.push_back(item);
        break;
      }
      case 'e': {                                    // APPENDS
        auto items = pop_mark();
        if (top()->kind != Kind::List) fail("APPENDS to a non-list");
        top()->items.insert(top()->items.end(), items.begin(), items.end());
        break;
      }
      case 's': {                                    // SETITEM
        ValuePtr value = pop();
        ValuePtr key = pop();
        set_items(top(), {key, value});
        break;
      }
      case 'u': {                                    // SETITEMS
        auto kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 'c': {                                    // GLOBAL
        auto g = Value::make(Kind::Global);
        const std::string module = read_line();
        g->text = module + "." + read_line();
        stack_.push_back(g);
        break;
      }
      case 0x93: {                                   // STACK_GLOBAL
        ValuePtr name = pop();
        ValuePtr module = pop();
        auto g = Value::make(Kind::Global);
        g->text = module->text + "." + name->text;
        stack_.push_back(g);
        break;
      }
      case 'R': call(pop()); break;                  // REDUCE
      case 0x81: call(pop()); break;                 // NEWOBJ: cls(*args)
      case 'b': pop(); break;                        // BUILD: object state (e.g. an OrderedDict's _metadata) is not needed
      case 'Q': {                                    // BINPERSID
        ValuePtr pid = pop();
        stack_.push_back(hooks_.persistent_load(pid));
        break;
      }
      case 'q': memo_put(read_le<uint8_t>()); break;    // BINPUT
      case 'r': memo_put(read_le<uint32_t>()); break;   // LONG_BINPUT
      case 0x94: memo_put(static_cast<uint32_t>(memo_.size())); break;  // MEMOIZE
      case 'h': memo_get(read_le<uint8_t>()); break;    // BINGET
      case 'j': memo_get(read_le<uint32_t>()); break;   // LONG_BINGET
      default: {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "0x%02x", op);
        fail(std::string("unsupported opcode ") + hex);
      }
    }
  }

  const std::string& data_;
  const Hooks& hooks_;
  size_t pos_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, ValuePtr> memo_;
};

}  // namespace

ValuePtr run(const std::string& data, const Hooks& hooks) { return Machine(data, hooks).run(); }

}  // namespace psearch::checkpoint::pickle
