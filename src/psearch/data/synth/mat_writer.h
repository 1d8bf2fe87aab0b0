#pragma once
/// Writing MATLAB v5 .mat files with libmatio, in the shapes MATLAB itself produces:
/// doubles, 1xN char arrays, struct arrays and cell arrays, zlib-compressed as MATLAB's
/// default (-v7) save does.
///
/// Every value belongs to the MatBuilder that made it and is freed with it, never by the
/// struct or cell it is put into. So one value may sit in many places: CUHK-SYSU's
/// TestG4000 names the same pool images in ~9 million gallery entries, and sharing one
/// name value per image keeps that file's tree at the size of its pointer tables (a
/// separate matio variable per entry would take gigabytes).
#include <cstddef>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

struct matvar_t;

namespace psearch::data::synth {

class MatBuilder {
 public:
  using Value = matvar_t*;

  MatBuilder() = default;
  MatBuilder(const MatBuilder&) = delete;
  MatBuilder& operator=(const MatBuilder&) = delete;
  ~MatBuilder();

  /// A rows x cols double matrix; `column_major` holds rows*cols values in MATLAB order.
  Value matrix(size_t rows, size_t cols, const std::vector<double>& column_major);
  /// A 1x1 double.
  Value scalar(double value);
  /// A 0x0 double: MATLAB's [] (e.g. the idlocate of a CUHK-SYSU gallery distractor).
  Value empty();
  /// A 1xN char array.
  Value text(const std::string& s);
  /// A rows x cols struct array; every field of every element must then be set.
  Value structure(size_t rows, size_t cols, const std::vector<std::string>& fields);
  /// Sets `field` of element `index` (linear, column-major) of struct `s` to `value`.
  void set(Value s, const std::string& field, size_t index, Value value);
  /// A rows x cols cell array; set_cell fills it.
  Value cell(size_t rows, size_t cols);
  void set_cell(Value c, size_t index, Value value);
  /// An Nx1 cell array of 1xK char arrays (lists of file names).
  Value text_column(const std::vector<std::string>& items);

 private:
  Value keep(matvar_t* var, const char* what);
  std::vector<matvar_t*> owned_;
};

/// Writes the named variables into a new MAT v5 file at `path` through a temporary file
/// and a rename. The 116-byte text header is fixed (matio would put the current time
/// there), so equal content gives byte-identical files. Errors name `path`.
void write_mat_file(const std::filesystem::path& path,
                    const std::vector<std::pair<std::string, MatBuilder::Value>>& variables);

}  // namespace psearch::data::synth
