// sieve: command-line front end. Subcommands live in cmd_*.cpp and register themselves.
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "command.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

namespace sieve::tool {

std::vector<CommandSetup>& command_registry() {
  static std::vector<CommandSetup> registry;
  return registry;
}

std::vector<CommandSetup>& attn_subcommand_registry() {
  static std::vector<CommandSetup> registry;
  return registry;
}

namespace {
int g_exit_code = 0;
}
void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

void apply_threads(int threads) {
  SIEVE_CHECK(threads >= 0, "--threads must be >= 0 (0 = all cores), got {}", threads);
  set_num_threads(threads);
}

}  // namespace sieve::tool

int main(int argc, char** argv) {
  CLI::App app{"sieve: inference that skips the work that does not change the answer"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sieve 0.1.0");
  for (auto setup : sieve::tool::command_registry()) setup(app);
  // A missing or misspelt command: name the known ones (CLI11 would only say one is required).
  std::string known;
  bool is_command = false;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    known += (known.empty() ? "" : ", ") + sub->get_name();
    is_command = is_command || (argc >= 2 && sub->get_name() == argv[1]);
  }
  if (argc < 2 || (argv[1][0] != '-' && !is_command)) {
    if (argc < 2)
      std::fprintf(stderr, "sieve: error: a command is required (%s; see --help)\n", known.c_str());
    else
      std::fprintf(stderr, "sieve: error: unknown command '%s' (known: %s)\n", argv[1],
                   known.c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print and succeed; a command-line mistake (unknown option, missing or
    // malformed value) is one line like every other error, exit status 2.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "sieve: error: %s (see --help)\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    // what() is only "std::bad_alloc"; say what it means for the user
    std::fprintf(stderr,
                 "sieve: error: out of memory (the requested sizes need more memory than this "
                 "machine can give; try smaller ones)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sieve: error: %s\n", e.what());
    return 1;
  }
  return sieve::tool::exit_code();
}
