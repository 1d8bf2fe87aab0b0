#include "psearch/data/mat_file.h"

#include <matio.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>

namespace psearch::data {
namespace {

// matio reports problems through a log callback (and prints nothing without one). We
// keep the last critical message of this thread so that errors can quote it.
thread_local std::string g_matio_message;

void capture_matio_log(int level, char* message) {
  if ((level & (MATIO_LOG_LEVEL_ERROR | MATIO_LOG_LEVEL_CRITICAL)) && message != nullptr) {
    g_matio_message.assign(message, strnlen(message, 400));
    std::replace(g_matio_message.begin(), g_matio_message.end(), '\n', ' ');
  }
}

void install_matio_log() {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("psearch", capture_matio_log); });
}

std::string matio_says() {
  if (g_matio_message.empty()) return "";
  return " (matio: " + g_matio_message + ")";
}

[[noreturn]] void fail_file(const std::string& path, const std::string& problem) {
  throw std::runtime_error(path + ": " + problem);
}

uint32_t load_u32(const unsigned char* p, bool swap) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

// MAT v5 data types (miINT8 ... miUTF32) and array classes (mxCELL_CLASS ...).
constexpr uint32_t kMiInt8 = 1, kMiUint8 = 2, kMiInt16 = 3, kMiUint16 = 4, kMiInt32 = 5, kMiUint32 = 6;
constexpr uint32_t kMiSingle = 7, kMiDouble = 9, kMiInt64 = 12, kMiUint64 = 13, kMiMatrix = 14;
constexpr uint32_t kMiCompressed = 15, kMiUtf8 = 16, kMiUtf16 = 17, kMiUtf32 = 18;
constexpr uint32_t kClassCell = 1, kClassStruct = 2, kClassChar = 4, kClassDouble = 6, kClassSingle = 7;
constexpr uint32_t kClassUint64 = 15;

/// Bytes per element of a v5 numeric or text data type; 0 for the others.
size_t v5_type_size(uint32_t type) {
  switch (type) {
    case kMiInt8:
    case kMiUint8:
    case kMiUtf8:
      return 1;
    case kMiInt16:
    case kMiUint16:
    case kMiUtf16:
      return 2;
    case kMiInt32:
    case kMiUint32:
    case kMiSingle:
    case kMiUtf32:
      return 4;
    case kMiDouble:
    case kMiInt64:
    case kMiUint64:
      return 8;
    default:
      return 0;
  }
}

/// Whether MATLAB (and matio) store data of class `cls` as v5 type `type`. Characters are
/// 8- or 16-bit units (the only ones matio reads); double arrays may be stored compactly as
/// any numeric type; integer arrays only as integers and single arrays as single or
/// integers: matio converts the stored type to the class type, and a floating-point value
/// out of an integer type's range would make that conversion undefined behaviour.
bool storage_allowed(uint32_t cls, uint32_t type) {
  const bool integer = type == kMiInt8 || type == kMiUint8 || type == kMiInt16 || type == kMiUint16 ||
                       type == kMiInt32 || type == kMiUint32 || type == kMiInt64 || type == kMiUint64;
  if (cls == kClassChar) return type == kMiUint8 || type == kMiUtf8 || type == kMiUint16 || type == kMiUtf16;
  if (cls == kClassDouble) return integer || type == kMiSingle || type == kMiDouble;
  if (cls == kClassSingle) return integer || type == kMiSingle;
  return integer;  // int8 .. uint64
}

/// Structural check of one MATLAB array (a miMATRIX element and everything inside it)
/// before matio reads it. matio trusts the counts a file declares: a 2 KB file that
/// claims a 1x16777218 struct array makes it allocate gigabytes, and a damaged or
/// truncated compressed stream comes back as zeros. Here every count must be backed by
/// bytes that are really there (each cell or struct field is an element of at least 8
/// bytes, each number or character at least its type's size), nesting is bounded, and
/// only the classes the dataset files use are accepted (cell, struct, char, numeric).
class V5Checker {
 public:
  V5Checker(const std::string& path, const unsigned char* base, size_t size, bool swap, std::string context)
      : path_(path), base_(base), size_(size), swap_(swap), context_(std::move(context)) {}

  /// Checks the miMATRIX element at `off`; returns the offset after it. `name` (if given)
  /// receives the array's name.
  size_t matrix(size_t off, size_t end, int depth, std::string* name_out = nullptr) const {
    if (depth > 64) bad(off, "arrays nested more than 64 deep");
    const Sub m = sub(off, end);
    if (m.type != kMiMatrix) bad(off, "element of type " + std::to_string(m.type) + " where an array belongs");
    if (m.nbytes == 0) return m.next;  // an empty array (e.g. an empty struct field)
    const size_t stop = m.data + m.nbytes;
    const Sub flags = sub(m.data, stop);
    if (flags.type != kMiUint32 || flags.nbytes != 8) bad(m.data, "malformed array flags");
    const uint32_t word = u32(flags.data);
    const uint32_t cls = word & 0xff;
    const bool complex = (word & 0x0800) != 0;
    const Sub dims = sub(flags.next, stop);
    if (dims.type != kMiInt32 || dims.nbytes == 0 || dims.nbytes % 4 != 0 || dims.nbytes > 4 * 32) {
      bad(flags.next, "malformed array dimensions");
    }
    size_t numel = 1;
    for (size_t i = 0; i < dims.nbytes / 4; ++i) {
      const uint32_t d = u32(dims.data + 4 * i);
      if (d > 0x7fffffffu) bad(dims.data, "negative array dimension");
      if (__builtin_mul_overflow(numel, static_cast<size_t>(d), &numel)) bad(dims.data, "array size overflows");
    }
    const Sub name = sub(dims.next, stop);
    if (name.type != kMiInt8) bad(dims.next, "malformed array name");
    if (name_out != nullptr) {  // as matio keeps it: up to the first NUL
      const char* text = reinterpret_cast<const char*>(base_ + name.data);
      name_out->assign(text, strnlen(text, name.nbytes));
    }
    size_t at = name.next;
    const size_t left = stop - std::min(at, stop);
    if (cls == kClassCell) {
      if (numel > left / 8)
        bad(at, "cell array of " + std::to_string(numel) + " cells in " + std::to_string(left) + " bytes");
      for (size_t i = 0; i < numel; ++i) at = matrix(at, stop, depth + 1);
    } else if (cls == kClassStruct) {
      const Sub len = sub(at, stop);
      if (len.type != kMiInt32 || len.nbytes != 4) bad(at, "malformed struct field name length");
      const uint32_t name_len = u32(len.data);
      const Sub names = sub(len.next, stop);
      if (names.type != kMiInt8 || name_len == 0 || name_len > 4096 || names.nbytes % name_len != 0) {
        bad(len.next, "malformed struct field names");
      }
      const size_t nfields = names.nbytes / name_len;
      at = names.next;
      size_t children = 0;
      const size_t room = (stop - std::min(at, stop)) / 8;
      if (__builtin_mul_overflow(numel, nfields, &children) || children > room) {
        bad(at, "struct array of " + std::to_string(numel) + " x " + std::to_string(nfields) + " fields in " +
                    std::to_string(stop - std::min(at, stop)) + " bytes");
      }
      for (size_t i = 0; i < children; ++i) at = matrix(at, stop, depth + 1);
    } else if (cls == kClassChar || (cls >= kClassDouble && cls <= kClassUint64)) {
      for (int part = 0; part < (complex ? 2 : 1); ++part) {
        const Sub data = sub(at, stop);
        const size_t unit = v5_type_size(data.type);
        if (!storage_allowed(cls, data.type)) {
          bad(at, "array of class " + std::to_string(cls) + " stored as data type " + std::to_string(data.type));
        }
        size_t need = 0;
        if (__builtin_mul_overflow(numel, unit, &need) || need > data.nbytes) {
          bad(at, std::to_string(numel) + " elements declared, " + std::to_string(data.nbytes / unit) + " present");
        }
        at = data.next;
      }
    } else {
      bad(m.data, "array of class " + std::to_string(cls) + ", which these files never hold");
    }
    return m.next;
  }

 private:
  struct Sub {
    uint32_t type;
    size_t nbytes;
    size_t data;  // offset of the data
    size_t next;  // offset of the next element (after padding, at most the parent's end)
  };

  uint32_t u32(size_t off) const { return load_u32(base_ + off, swap_); }

  /// The element at `off`, which must lie within [off, end).
  Sub sub(size_t off, size_t end) const {
    if (end > size_ || off > end || end - off < 8) bad(off, "element tag past the end of its parent");
    const uint32_t w = u32(off);
    if (w >> 16) {  // small data element: 2-byte count, 2-byte type, data in the next 4 bytes
      const size_t n = w >> 16;
      if (n > 4) bad(off, "malformed small element");
      return {w & 0xffff, n, off + 4, off + 8};
    }
    const size_t n = u32(off + 4);
    if (n > end - off - 8) {
      bad(off, "element of " + std::to_string(n) + " bytes where " + std::to_string(end - off - 8) + " remain");
    }
    const size_t padded = (n + 7) & ~size_t{7};
    return {w, n, off + 8, std::min(off + 8 + padded, end)};
  }

  [[noreturn]] void bad(size_t off, const std::string& what) const {
    fail_file(path_, "damaged MATLAB data (" + context_ + ", offset " + std::to_string(off) + "): " + what);
  }

  const std::string& path_;
  const unsigned char* base_;
  size_t size_;
  bool swap_;
  std::string context_;
};

/// Inflates a compressed variable and checks that the zlib stream is whole (it ends, its
/// checksum is right) and holds one well-formed array. matio itself does not notice a
/// truncated or damaged stream: it hands back zeros.
std::string check_compressed(const std::string& path, const unsigned char* data, size_t n, size_t at, bool swap) {
  const std::string where = "the compressed variable at byte " + std::to_string(at);
  z_stream z{};
  if (inflateInit(&z) != Z_OK) fail_file(path, "cannot initialise zlib");
  std::string out;
  unsigned char buffer[1 << 16];
  int rc = Z_OK;
  size_t fed = 0;
  while (rc == Z_OK) {
    if (z.avail_in == 0 && fed < n) {  // zlib counts in 32 bits: feed at most 1 GiB at a time
      const size_t chunk = std::min<size_t>(n - fed, size_t{1} << 30);
      z.next_in = const_cast<unsigned char*>(data + fed);
      z.avail_in = static_cast<uInt>(chunk);
      fed += chunk;
    }
    z.next_out = buffer;
    z.avail_out = sizeof(buffer);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(reinterpret_cast<const char*>(buffer), sizeof(buffer) - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0 && fed >= n) break;  // the input ended first
    if (rc == Z_BUF_ERROR) rc = Z_OK;
  }
  const std::string zmsg = z.msg != nullptr ? std::string(z.msg) : "";
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    fail_file(path, where + " is " + (rc == Z_BUF_ERROR ? "truncated" : "corrupt") +
                        (zmsg.empty() ? "" : " (zlib: " + zmsg + ")"));
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(out.data());
  std::string name;
  V5Checker(path, bytes, out.size(), swap, where).matrix(0, out.size(), 0, &name);
  return name;
}

// A v5 .mat file starts with a 116-byte text header, an 8-byte subsystem offset, a 2-byte
// version (0x0100) and the 2-byte endian indicator "IM" (or "MI" when byte-swapped), then
// one data element per variable: miMATRIX, or miCOMPRESSED holding a zlib stream of one.
// Anything else (v4 files, which have no header, and v7.3 files, which are HDF5) is refused
// before matio sees it: the datasets ship v5 files only, and this keeps matio's v4 guesser
// and the HDF5 library away from arbitrary bytes. Every variable is then checked by
// V5Checker, so matio only ever parses well-formed data.
/// Returns the names of the variables, in file order.
std::vector<std::string> check_v5_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot be opened for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* file = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 128) {
    fail_file(path, "not a MATLAB v5 .mat file (shorter than the 128-byte header: " + std::to_string(bytes.size()) +
                        " bytes)");
  }
  const bool little = file[126] == 'I' && file[127] == 'M';
  const bool big = file[126] == 'M' && file[127] == 'I';
  if (!little && !big) fail_file(path, "not a MATLAB v5 .mat file (no 'IM'/'MI' endian mark at byte 126)");
  const unsigned version = little ? (file[124] | (file[125] << 8)) : ((file[124] << 8) | file[125]);
  if (version == 0x0200) {
    fail_file(path, "is a MATLAB v7.3 (HDF5) .mat file; only v5 files (as the datasets ship them) are read");
  }
  if (version != 0x0100) fail_file(path, "not a MATLAB v5 .mat file (version field " + std::to_string(version) + ")");
  const bool swap = big;  // the file's byte order differs from ours (x86: little endian)
  std::vector<std::string> names;
  size_t at = 128;
  while (bytes.size() - at >= 8) {
    const uint32_t type = load_u32(file + at, swap);
    const uint32_t n = load_u32(file + at + 4, swap);
    if (type != kMiMatrix && type != kMiCompressed) {
      fail_file(path, "the element at byte " + std::to_string(at) + " has type " + std::to_string(type) +
                          ", not a MATLAB array (file damaged?)");
    }
    if (n > bytes.size() - at - 8) {
      fail_file(path, "is truncated: the variable at byte " + std::to_string(at) + " declares " + std::to_string(n) +
                          " bytes, " + std::to_string(bytes.size() - at - 8) + " follow");
    }
    if (type == kMiCompressed) {
      names.push_back(check_compressed(path, file + at + 8, n, at, swap));
    } else {
      names.emplace_back();
      V5Checker(path, file, bytes.size(), swap, "the variable at byte " + std::to_string(at))
          .matrix(at, at + 8 + n, 0, &names.back());
    }
    at += 8 + static_cast<size_t>(n);
  }
  return names;
}

bool checked_mul(size_t a, size_t b, size_t* out) { return !__builtin_mul_overflow(a, b, out); }

const char* class_text(int c) {
  switch (c) {
    case MAT_C_EMPTY:
      return "empty";
    case MAT_C_CELL:
      return "cell";
    case MAT_C_STRUCT:
      return "struct";
    case MAT_C_OBJECT:
      return "object";
    case MAT_C_CHAR:
      return "char";
    case MAT_C_SPARSE:
      return "sparse";
    case MAT_C_DOUBLE:
      return "double";
    case MAT_C_SINGLE:
      return "single";
    case MAT_C_INT8:
      return "int8";
    case MAT_C_UINT8:
      return "uint8";
    case MAT_C_INT16:
      return "int16";
    case MAT_C_UINT16:
      return "uint16";
    case MAT_C_INT32:
      return "int32";
    case MAT_C_UINT32:
      return "uint32";
    case MAT_C_INT64:
      return "int64";
    case MAT_C_UINT64:
      return "uint64";
    case MAT_C_FUNCTION:
      return "function";
    case MAT_C_OPAQUE:
      return "opaque";
    default:
      return "unknown class";
  }
}

bool is_numeric_class(int c) { return c >= MAT_C_DOUBLE && c <= MAT_C_UINT64; }

/// Bytes per element of a numeric data type, 0 for anything else.
size_t numeric_size(int t) {
  switch (t) {
    case MAT_T_INT8:
    case MAT_T_UINT8:
      return 1;
    case MAT_T_INT16:
    case MAT_T_UINT16:
      return 2;
    case MAT_T_INT32:
    case MAT_T_UINT32:
    case MAT_T_SINGLE:
      return 4;
    case MAT_T_DOUBLE:
    case MAT_T_INT64:
    case MAT_T_UINT64:
      return 8;
    default:
      return 0;
  }
}

template <typename T>
double load_as_double(const void* data, size_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(data) + i * sizeof(T), sizeof(T));
  return static_cast<double>(v);
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::string join_names(const std::vector<std::string>& names) {
  if (names.empty()) return "(none)";
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// ---------------------------------------------------------------------------------------
// MatNode

MatNode::MatNode(std::shared_ptr<matvar_t> root, const matvar_t* var, std::string file, std::string where,
                 size_t field_split)
    : root_(std::move(root)), var_(var), file_(std::move(file)), where_(std::move(where)), field_split_(field_split) {
  if (var_ == nullptr) fail("is missing (matio returned no data)");
  // Dimensions: a negative or absurd rank, or a rank without a dims array, is corruption.
  if (var_->rank < 0 || var_->rank > 32) fail("has an invalid rank " + std::to_string(var_->rank));
  if (var_->rank > 0 && var_->dims == nullptr) fail("has no dimensions");
  numel_ = var_->rank > 0 ? 1 : 0;
  for (int i = 0; i < var_->rank; ++i) {
    dims_.push_back(var_->dims[i]);
    if (!checked_mul(numel_, var_->dims[i], &numel_)) fail("has dimensions whose product overflows");
  }
  const int cls = var_->class_type;
  if (var_->isComplex && (is_numeric_class(cls) || cls == MAT_C_CHAR)) {
    kind_ = Kind::kOther;  // complex data is stored differently; nothing here reads it
    return;
  }
  if (numel_ == 0 && cls != MAT_C_STRUCT) {
    kind_ = cls == MAT_C_CELL       ? Kind::kCell
            : cls == MAT_C_CHAR     ? Kind::kChar
            : is_numeric_class(cls) ? Kind::kNumeric
            : cls == MAT_C_EMPTY    ? Kind::kEmpty
                                    : Kind::kOther;
    return;
  }
  switch (cls) {
    case MAT_C_EMPTY:
      kind_ = Kind::kEmpty;
      numel_ = 0;
      return;
    case MAT_C_STRUCT: {
      const unsigned nfields = Mat_VarGetNumberOfFields(const_cast<matvar_t*>(var_));
      char* const* names = Mat_VarGetStructFieldnames(var_);
      if (nfields > 0 && names == nullptr) fail("is a struct array without field names");
      if (nfields > 4096)
        fail("is a struct array with an implausible number of fields (" + std::to_string(nfields) + ")");
      for (unsigned f = 0; f < nfields; ++f) {
        if (names[f] == nullptr) fail("is a struct array with a missing field name");
        fields_.emplace_back(names[f], strnlen(names[f], 256));
      }
      size_t slots = 0, bytes = 0;
      if (!checked_mul(numel_, nfields, &slots) || !checked_mul(slots, sizeof(matvar_t*), &bytes)) {
        fail("is a struct array whose size overflows");
      }
      if (slots > 0 && (var_->data == nullptr || var_->nbytes < bytes)) {
        fail("is a struct array whose field data is missing or truncated");
      }
      kind_ = Kind::kStruct;
      data_ = var_->data;
      return;
    }
    case MAT_C_CELL: {
      size_t bytes = 0;
      if (!checked_mul(numel_, sizeof(matvar_t*), &bytes)) fail("is a cell array whose size overflows");
      if (var_->data == nullptr || var_->nbytes < bytes) fail("is a cell array whose data is missing or truncated");
      kind_ = Kind::kCell;
      data_ = var_->data;
      return;
    }
    case MAT_C_CHAR: {
      const int t = var_->data_type;
      size_t unit = 0;
      if (t == MAT_T_UINT8 || t == MAT_T_INT8 || t == MAT_T_UTF8) unit = 1;
      if (t == MAT_T_UINT16 || t == MAT_T_INT16 || t == MAT_T_UTF16) unit = 2;
      if (t == MAT_T_UINT32 || t == MAT_T_INT32 || t == MAT_T_UTF32) unit = 4;
      if (unit == 0) fail("is a char array with an unsupported character type " + std::to_string(t));
      if (var_->data == nullptr) fail("is a char array without data");
      // UTF-8 data holds nbytes bytes for numel characters; the others numel units.
      size_t need = 0;
      if (!checked_mul(numel_, t == MAT_T_UTF8 ? 1 : unit, &need) || var_->nbytes < need) {
        fail("is a char array whose data is truncated");
      }
      kind_ = Kind::kChar;
      data_ = var_->data;
      return;
    }
    default:
      break;
  }
  if (is_numeric_class(cls)) {
    const size_t unit = numeric_size(var_->data_type);
    size_t need = 0;
    if (unit == 0 || static_cast<size_t>(std::max(var_->data_size, 0)) != unit) {
      fail("is a " + std::string(class_text(cls)) + " array with an inconsistent element type");
    }
    if (!checked_mul(numel_, unit, &need) || var_->data == nullptr || var_->nbytes < need) {
      fail("is a numeric array whose data is missing or truncated");
    }
    kind_ = Kind::kNumeric;
    data_ = var_->data;
    return;
  }
  kind_ = Kind::kOther;
}

std::string MatNode::dims_text() const {
  if (dims_.empty()) return "0x0";
  std::string out;
  for (size_t d : dims_) out += (out.empty() ? "" : "x") + std::to_string(d);
  return out;
}

std::string MatNode::class_name() const {
  if (var_ == nullptr) return "missing";
  std::string name = class_text(var_->class_type);
  if (var_->isComplex) name = "complex " + name;
  return name;
}

void MatNode::fail(const std::string& problem) const {
  // Fields read as "field 'idlocate' of Img(12).box(3)", everything else by its name.
  std::string subject = where_;
  if (field_split_ != std::string::npos) {
    subject = "field '" + where_.substr(field_split_ + 1) + "' of " + where_.substr(0, field_split_);
  }
  throw std::runtime_error(file_ + ": " + (subject.empty() ? "" : subject + " ") + problem);
}

bool MatNode::has_field(const std::string& name) const {
  return std::find(fields_.begin(), fields_.end(), name) != fields_.end();
}

MatNode MatNode::field(size_t index, const std::string& name, const std::string& expected) const {
  if (kind_ != Kind::kStruct) fail("is a " + class_name() + " array, not a struct array");
  if (index >= numel_) {
    fail("has " + std::to_string(numel_) + " elements; element " + std::to_string(index + 1) + " does not exist");
  }
  const std::string element = where_ + (numel_ == 1 && index == 0 ? "" : "(" + std::to_string(index + 1) + ")");
  const auto it = std::find(fields_.begin(), fields_.end(), name);
  if (it == fields_.end()) {
    throw std::runtime_error(file_ + ": " + element + " has no field '" + name + "'" +
                             (expected.empty() ? "" : " (expected " + expected + ")") +
                             "; its fields: " + join_names(fields_));
  }
  const size_t f = static_cast<size_t>(it - fields_.begin());
  const matvar_t* child = static_cast<matvar_t* const*>(data_)[index * fields_.size() + f];
  const std::string child_where = element + "." + name;
  if (child == nullptr) {
    throw std::runtime_error(file_ + ": field '" + name + "' of " + element + " is missing (no data in the file)");
  }
  return MatNode(root_, child, file_, child_where, element.size());
}

MatNode MatNode::cell(size_t index) const {
  if (kind_ != Kind::kCell) fail("is a " + class_name() + " array, not a cell array");
  if (index >= numel_) {
    fail("has " + std::to_string(numel_) + " cells; cell " + std::to_string(index + 1) + " does not exist");
  }
  const matvar_t* child = static_cast<matvar_t* const*>(data_)[index];
  const std::string child_where = where_ + "{" + std::to_string(index + 1) + "}";
  if (child == nullptr) {
    throw std::runtime_error(file_ + ": " + child_where + " is missing (no data in the file)");
  }
  return MatNode(root_, child, file_, child_where);
}

std::string MatNode::string() const {
  if (numel_ == 0 && kind_ != Kind::kStruct && kind_ != Kind::kOther) return "";  // '' or []
  if (kind_ != Kind::kChar) fail("is a " + class_name() + " array, not a char array");
  // Only a single row of characters is a string (MATLAB stores char matrices column-major).
  size_t non_singleton = 0;
  for (size_t d : dims_) non_singleton += d > 1;
  if (non_singleton > 1) fail("is a " + dims_text() + " char matrix, not a single string");
  std::string out;
  const int t = var_->data_type;
  if (t == MAT_T_UTF8) {
    const size_t n = var_->nbytes;  // validated >= numel
    out.assign(static_cast<const char*>(data_), n);
    // Zero padding after the text (matio allocates nbytes) is not part of the name.
    while (!out.empty() && out.back() == '\0') out.pop_back();
    return out;
  }
  if (t == MAT_T_UINT8 || t == MAT_T_INT8) {
    const auto* p = static_cast<const unsigned char*>(data_);
    for (size_t i = 0; i < numel_; ++i) append_utf8(out, p[i]);
    return out;
  }
  if (t == MAT_T_UINT16 || t == MAT_T_INT16 || t == MAT_T_UTF16) {
    for (size_t i = 0; i < numel_; ++i) {
      uint16_t u;
      std::memcpy(&u, static_cast<const char*>(data_) + 2 * i, 2);
      if (u >= 0xD800 && u <= 0xDFFF) fail("holds a UTF-16 surrogate, which names in these datasets never do");
      append_utf8(out, u);
    }
    return out;
  }
  for (size_t i = 0; i < numel_; ++i) {
    uint32_t u;
    std::memcpy(&u, static_cast<const char*>(data_) + 4 * i, 4);
    if (u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF)) fail("holds an invalid character code");
    append_utf8(out, u);
  }
  return out;
}

std::vector<double> MatNode::numbers() const {
  if (kind_ == Kind::kEmpty) return {};
  if (kind_ != Kind::kNumeric) fail("is a " + class_name() + " array, not a real numeric array");
  if (numel_ == 0) return {};
  std::vector<double> out(numel_);
  const void* d = data_;
  switch (var_->data_type) {
    case MAT_T_DOUBLE:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<double>(d, i);
      break;
    case MAT_T_SINGLE:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<float>(d, i);
      break;
    case MAT_T_INT8:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<int8_t>(d, i);
      break;
    case MAT_T_UINT8:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<uint8_t>(d, i);
      break;
    case MAT_T_INT16:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<int16_t>(d, i);
      break;
    case MAT_T_UINT16:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<uint16_t>(d, i);
      break;
    case MAT_T_INT32:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<int32_t>(d, i);
      break;
    case MAT_T_UINT32:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<uint32_t>(d, i);
      break;
    case MAT_T_INT64:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<int64_t>(d, i);
      break;
    case MAT_T_UINT64:
      for (size_t i = 0; i < numel_; ++i) out[i] = load_as_double<uint64_t>(d, i);
      break;
    default:
      fail("has an unsupported numeric type");
  }
  return out;
}

std::vector<double> MatNode::numbers_exactly(size_t n, const std::string& what) const {
  if (kind_ != Kind::kNumeric || numel_ != n) {
    fail("is not " + what + " (found a " + dims_text() + " " + class_name() + " array)");
  }
  return numbers();
}

// ---------------------------------------------------------------------------------------
// MatFile

MatFile::MatFile(const std::string& path) : path_(path) {
  install_matio_log();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail_file(path, "file not found");
  if (S_ISDIR(st.st_mode)) fail_file(path, "is a directory, not a .mat file");
  names_ = check_v5_file(path);
  g_matio_message.clear();
  mat_ = Mat_Open(path.c_str(), MAT_ACC_RDONLY);
  if (mat_ == nullptr) fail_file(path, "not a readable MATLAB .mat file" + matio_says());
  if (Mat_GetVersion(mat_) != MAT_FT_MAT5) {
    Mat_Close(mat_);
    mat_ = nullptr;
    fail_file(path, "not a MATLAB v5 .mat file");
  }
  // The variable names come from the structural check above, not from matio's directory
  // (Mat_VarReadNextInfo parses a compressed variable completely: as slow as reading it).
}

MatFile::~MatFile() {
  if (mat_ != nullptr) Mat_Close(mat_);
}

bool MatFile::has_variable(const std::string& name) const {
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

MatNode MatFile::read(const std::string& name, const std::string& expected) const {
  if (!has_variable(name)) {
    fail_file(path_, "variable '" + name + "' not found" + (expected.empty() ? "" : " (expected " + expected + ")") +
                         "; variables in the file: " + join_names(names_));
  }
  g_matio_message.clear();
  matvar_t* var = Mat_VarRead(mat_, name.c_str());
  if (var == nullptr) fail_file(path_, "variable '" + name + "' cannot be read (corrupt data)" + matio_says());
  std::shared_ptr<matvar_t> owned(var, Mat_VarFree);
  return MatNode(owned, var, path_, name);
}

}  // namespace psearch::data
