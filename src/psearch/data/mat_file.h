#pragma once
/// A small, defensive RAII layer over libmatio for reading MATLAB v5 (and v4 / v7.3)
/// .mat files: open a file, read a named variable, walk struct arrays and cell arrays,
/// read char arrays as strings and numeric arrays as doubles.
///
/// Every failure throws std::runtime_error with one line that starts with the file's path
/// and names the element in MATLAB notation (1-based), e.g.
///   "annotation/Images.mat: field 'idlocate' of Img(12).box(3) is not a numeric 1x4 array".
/// Nothing here trusts what matio hands back: null pointers, unexpected classes, element
/// sizes and byte counts are all checked before any pointer is followed, because a corrupt
/// file can make matio return any of them.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

struct matvar_t;  // libmatio
struct _mat_t;    // libmatio

namespace psearch::data {

class MatFile;

/// A view of one variable or sub-element of a variable read from a MatFile. Keeps the
/// variable it belongs to alive; cheap to copy. `where()` is its MATLAB-style name, used in
/// error messages ("Img(12).box(3).idlocate").
class MatNode {
 public:
  enum class Kind { kEmpty, kCell, kStruct, kChar, kNumeric, kOther };

  Kind kind() const { return kind_; }
  bool is_struct() const { return kind_ == Kind::kStruct; }
  bool is_cell() const { return kind_ == Kind::kCell; }
  bool is_char() const { return kind_ == Kind::kChar; }
  bool is_numeric() const { return kind_ == Kind::kNumeric; }
  /// Number of elements (product of the dimensions; 0 for an empty array of any class).
  size_t numel() const { return numel_; }
  const std::vector<size_t>& dims() const { return dims_; }
  /// "1x4", "0x0", "3x2x5".
  std::string dims_text() const;
  /// "double", "struct", "cell", "char", ...
  std::string class_name() const;
  const std::string& where() const { return where_; }
  const std::string& file() const { return file_; }

  /// Fields of a struct array (empty for other kinds).
  const std::vector<std::string>& field_names() const { return fields_; }
  bool has_field(const std::string& name) const;
  /// Field `name` of element `index` (0-based, column-major) of this struct array.
  /// `expected` describes what the caller wants, for the error message when it is missing.
  MatNode field(size_t index, const std::string& name, const std::string& expected = "") const;
  /// Element `index` (0-based) of this cell array.
  MatNode cell(size_t index) const;

  /// A char array with one row (or none) as a string (UTF-16 code units become UTF-8).
  std::string string() const;
  /// A real numeric (or logical) array as doubles in column-major order.
  std::vector<double> numbers() const;
  /// A numeric array with exactly `n` elements (any orientation), or throws naming `what`.
  std::vector<double> numbers_exactly(size_t n, const std::string& what) const;
  /// Throws "<file>: <where> <problem>".
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  friend class MatFile;
  MatNode(std::shared_ptr<matvar_t> root, const matvar_t* var, std::string file, std::string where,
          size_t field_split = std::string::npos);

  std::shared_ptr<matvar_t> root_;  // owns the whole variable tree
  const matvar_t* var_ = nullptr;
  std::string file_;
  std::string where_;
  size_t field_split_ = std::string::npos;  // where_[field_split_] is the '.' before a field name
  Kind kind_ = Kind::kOther;
  size_t numel_ = 0;
  std::vector<size_t> dims_;
  std::vector<std::string> fields_;  // struct arrays only
  const void* data_ = nullptr;       // validated: holds numel_ (x fields) elements
};

/// An open .mat file (closed on destruction). Not copyable.
class MatFile {
 public:
  /// Opens `path` read-only. Throws "<path>: file not found" or
  /// "<path>: not a readable MATLAB .mat file (<matio's message>)".
  explicit MatFile(const std::string& path);
  ~MatFile();
  MatFile(const MatFile&) = delete;
  MatFile& operator=(const MatFile&) = delete;

  const std::string& path() const { return path_; }
  /// Names of the variables in the file, in file order.
  const std::vector<std::string>& variable_names() const { return names_; }
  bool has_variable(const std::string& name) const;
  /// Reads variable `name` completely. `expected` says what the caller expects it to hold,
  /// e.g. "the CUHK-SYSU image list"; it goes into the "not found" message.
  MatNode read(const std::string& name, const std::string& expected = "") const;

 private:
  std::string path_;
  _mat_t* mat_ = nullptr;
  std::vector<std::string> names_;
};

/// Joins names for error messages: "a, b, c" or "(none)".
std::string join_names(const std::vector<std::string>& names);

}  // namespace psearch::data
