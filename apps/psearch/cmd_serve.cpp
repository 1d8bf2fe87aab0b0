// `psearch serve`: the HTTP API and web page over a gallery (psearch index):
//   psearch serve --gallery out/demo/vtest.db            # http://127.0.0.1:8080/
//   psearch serve --gallery g.db --host 0.0.0.0 --port 9000 --max-upload-mb 32
// Binds to the loopback address unless --host says otherwise. An indexer may keep adding
// to the gallery meanwhile; searches pick the new detections up.
#include <iostream>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "psearch/server/http_server.h"

namespace psearch::cli {
namespace {

struct ServeArgs {
  std::string gallery, checkpoint, index = "exact", device = "cpu";
  server::ServeOptions options;
  int max_upload_mb = 16;
  int threads = 0;
};

void run_serve(ServeArgs args) {
  apply_threads(args.threads);
  args.options.max_upload_bytes = static_cast<size_t>(args.max_upload_mb) << 20;
  server::SearchService service(args.gallery, gallery::index_kind_from_string(args.index), args.checkpoint,
                                parse_device(args.device));
  server::serve(service, args.options, [&](const std::string& url) {
    std::cout << "serving " << args.gallery << " on " << url << " (Ctrl-C stops)" << std::endl;
  });
}

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "HTTP API and web page to search a gallery");
  cmd->add_option("--gallery", args->gallery, "Gallery file (psearch index)")->required();
  cmd->add_option("--host", args->options.host, "Address to listen on (0.0.0.0: every interface)")->capture_default_str();
  cmd->add_option("--port", args->options.port, "Port (0: any free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--max-upload-mb", args->max_upload_mb, "Largest request body; larger gets 413")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--workers", args->options.workers, "Request threads")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--index", args->index, "exact (FAISS flat) or approximate (FAISS IVF-flat)")
      ->check(CLI::IsMember({"exact", "approximate"}))
      ->capture_default_str();
  cmd->add_option("--checkpoint", args->checkpoint, "The gallery's checkpoint, when it moved since indexing");
  cmd->add_option("--device", args->device, "cpu, cuda or cuda:N")->capture_default_str();
  add_threads_option(cmd, args->threads);
  cmd->callback([args] { run_serve(*args); });
}

}  // namespace

PSEARCH_REGISTER_COMMAND(42, add_serve_command);

}  // namespace psearch::cli
