// sieve: command-line front end. Subcommands live in cmd_*.cpp and register themselves.
#include <cstdio>
#include <exception>

#include "command.h"
#include "sieve/core/error.h"

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

}  // namespace sieve::tool

int main(int argc, char** argv) {
  CLI::App app{"sieve: inference that skips the work that does not change the answer"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sieve 0.1.0");
  for (auto setup : sieve::tool::command_registry()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sieve: error: %s\n", e.what());
    return 1;
  }
  return sieve::tool::exit_code();
}
