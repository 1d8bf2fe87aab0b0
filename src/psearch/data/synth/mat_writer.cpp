#include "psearch/data/synth/mat_writer.h"

#include <matio.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "psearch/data/synth/files.h"

namespace psearch::data::synth {
namespace {

/// MATLAB pads the descriptive header with spaces to 116 bytes; so do we, with no date.
std::string fixed_header() {
  std::string header = "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: psearch synth (libmatio " +
                       std::string(MATIO_VERSION_STR) + ")";
  header.resize(116, ' ');
  return header;
}

bool is_container(const matvar_t* v) { return v->class_type == MAT_C_STRUCT || v->class_type == MAT_C_CELL; }

}  // namespace

MatBuilder::~MatBuilder() {
  // Containers would free their children (shared ones several times): detach the
  // pointer tables first, then free every value exactly once.
  for (matvar_t* v : owned_)
    if (is_container(v)) {
      std::free(v->data);
      v->data = nullptr;
    }
  for (matvar_t* v : owned_) Mat_VarFree(v);
}

MatBuilder::Value MatBuilder::keep(matvar_t* var, const char* what) {
  if (!var) throw std::runtime_error(std::string("matio: cannot create ") + what);
  owned_.push_back(var);
  return var;
}

MatBuilder::Value MatBuilder::matrix(size_t rows, size_t cols, const std::vector<double>& column_major) {
  if (column_major.size() != rows * cols) throw std::logic_error("MatBuilder::matrix: size does not match dimensions");
  size_t dims[2] = {rows, cols};
  // Mat_VarCreate copies the data (opt 0), so the vector may go away.
  return keep(Mat_VarCreate(nullptr, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims,
                            rows * cols != 0 ? const_cast<double*>(column_major.data()) : nullptr, 0),
              "double matrix");
}

MatBuilder::Value MatBuilder::scalar(double value) { return matrix(1, 1, {value}); }

MatBuilder::Value MatBuilder::empty() { return matrix(0, 0, {}); }

MatBuilder::Value MatBuilder::text(const std::string& s) {
  size_t dims[2] = {1, s.size()};
  return keep(Mat_VarCreate(nullptr, MAT_C_CHAR, MAT_T_UTF8, 2, dims, const_cast<char*>(s.data()), 0), "char array");
}

MatBuilder::Value MatBuilder::structure(size_t rows, size_t cols, const std::vector<std::string>& fields) {
  std::vector<const char*> names;
  for (const auto& f : fields) names.push_back(f.c_str());
  size_t dims[2] = {rows, cols};
  return keep(Mat_VarCreateStruct(nullptr, 2, dims, names.data(), static_cast<unsigned>(names.size())),
              "struct array");
}

void MatBuilder::set(Value s, const std::string& field, size_t index, Value value) {
  // The previous value (none, normally) stays owned by the builder.
  Mat_VarSetStructFieldByName(s, field.c_str(), index, value);
  if (Mat_VarGetStructFieldByName(s, field.c_str(), index) != value)
    throw std::logic_error("MatBuilder::set: no field '" + field + "' at index " + std::to_string(index));
}

MatBuilder::Value MatBuilder::cell(size_t rows, size_t cols) {
  size_t dims[2] = {rows, cols};
  return keep(Mat_VarCreate(nullptr, MAT_C_CELL, MAT_T_CELL, 2, dims, nullptr, 0), "cell array");
}

void MatBuilder::set_cell(Value c, size_t index, Value value) {
  Mat_VarSetCell(c, static_cast<int>(index), value);
  if (Mat_VarGetCell(c, static_cast<int>(index)) != value)
    throw std::logic_error("MatBuilder::set_cell: index " + std::to_string(index) + " out of range");
}

MatBuilder::Value MatBuilder::text_column(const std::vector<std::string>& items) {
  Value c = cell(items.size(), 1);
  for (size_t i = 0; i < items.size(); ++i) set_cell(c, i, text(items[i]));
  return c;
}

void write_mat_file(const std::filesystem::path& path,
                    const std::vector<std::pair<std::string, MatBuilder::Value>>& variables) {
  const std::filesystem::path tmp = temporary_path(path);
  mat_t* mat = Mat_CreateVer(tmp.c_str(), fixed_header().c_str(), MAT_FT_MAT5);
  if (!mat) throw std::runtime_error(path.string() + ": cannot create MAT file");
  bool ok = true;
  for (const auto& [name, var] : variables) {
    std::free(var->name);  // top-level variables carry their name in the file
    var->name = strdup(name.c_str());
    ok = ok && Mat_VarWrite(mat, var, MAT_COMPRESSION_ZLIB) == 0;
  }
  ok = (Mat_Close(mat) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path.string() + ": cannot write MAT file");
  }
  commit_file(tmp, path);
}

}  // namespace psearch::data::synth
