// `psearch eval-results`: scores a results file (docs/results_format.md) written by any
// framework against the CUHK-SYSU or PRW test protocol: search mAP and top-k, detection AP
// and recall; writes metrics.json and PNG plots.
#include <chrono>
#include <iostream>
#include <memory>

#include "commands.h"
#include "eval_report.h"

namespace psearch::cli {
namespace {

void add_eval_results_command(CLI::App& app) {
  auto settings = std::make_shared<EvalSettings>();
  auto results = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "eval-results", "Score a results file (docs/results_format.md) with the CUHK-SYSU / PRW search protocol");
  cmd->add_option("results", *results, "torch.save file in the psearch-results/1 format")->required();
  auto check = add_protocol_options(cmd, settings);
  cmd->callback([settings, results, check] {
    check();
    const auto start = std::chrono::steady_clock::now();
    const evaluation::ResultsFile file = evaluation::read_results_file(*results);
    std::cout << "read " << *results << " in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
    evaluate_and_report(*settings, file, "results " + *results);
  });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(40, add_eval_results_command);

}  // namespace psearch::cli
