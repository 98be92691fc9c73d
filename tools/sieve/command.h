// Subcommand registration for the `sieve` tool.
//
// Each cmd_<name>.cpp defines a function that adds a CLI11 subcommand and registers it with a
// static SIEVE_REGISTER_COMMAND(fn). The callback runs the command; errors are thrown as
// sieve::Error (or std::exception) and main() prints one line and exits non-zero.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace sieve::tool {

using CommandSetup = void (*)(CLI::App& app);

std::vector<CommandSetup>& command_registry();
/// Setups for subcommands of `sieve attn` (e.g. `sieve attn eval`); cmd_attn.cpp calls each with
/// the `attn` CLI::App after creating it.
std::vector<CommandSetup>& attn_subcommand_registry();

struct CommandRegistrar {
  explicit CommandRegistrar(CommandSetup fn) { command_registry().push_back(fn); }
};
struct AttnSubcommandRegistrar {
  explicit AttnSubcommandRegistrar(CommandSetup fn) { attn_subcommand_registry().push_back(fn); }
};

/// Exit code a command sets through set_exit_code() (default 0).
void set_exit_code(int code);
int exit_code();

/// Every command's --threads: 0 = all cores, a positive count that many; a negative count is an
/// error (sieve::Error naming the option) instead of silently meaning "all".
void apply_threads(int threads);

/// For unsigned options (--seed): CLI11 converts "-1" to 2^64 - 1 without a word; this rejects a
/// sign with "--seed: must be a non-negative integer, got -1".
inline CLI::Validator non_negative_integer() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        return v.find('-') != std::string::npos ? "must be a non-negative integer, got " + v : "";
      },
      "");
}

}  // namespace sieve::tool

#define SIEVE_REGISTER_COMMAND(fn) \
  static ::sieve::tool::CommandRegistrar sieve_command_registrar_##fn(&fn)

#define SIEVE_REGISTER_ATTN_SUBCOMMAND(fn) \
  static ::sieve::tool::AttnSubcommandRegistrar sieve_attn_subcommand_registrar_##fn(&fn)
