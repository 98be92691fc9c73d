# Smoke tests of `sieve generate` (label cpu) on the tiny Llama fixture of tests/data/engine/llama
# (2 layers, vocabulary 1280, context 256; no tokenizer, so prompts are token ids): a working run,
# the context warning, and one clear error line with a non-zero exit for each kind of bad input.
# Included from tests/CMakeLists.txt; each test runs check_cli.cmake in script mode.
if(NOT TARGET sieve)
  return()
endif()

set(_engine_cli_dir ${CMAKE_CURRENT_LIST_DIR})
set(_engine_model ${PROJECT_SOURCE_DIR}/tests/data/engine/llama)
set(_engine_tokenizer ${PROJECT_SOURCE_DIR}/tests/data/engine/tokenizer/bytelevel.json)
# a model folder whose config.json is cut short
set(_engine_bad_model ${CMAKE_CURRENT_BINARY_DIR}/engine_cli_bad_model)
file(MAKE_DIRECTORY ${_engine_bad_model})
file(WRITE ${_engine_bad_model}/config.json "{\n  \"model_type\": \"llama\",\n")

function(sieve_generate_cli_test name mode)
  sieve_cli_test(generate_cli_${name} ${_engine_cli_dir}/check_cli.cmake ${mode} ${ARGN})
endfunction()

# Working runs: greedy ids; past the context of 256 the run goes on with a warning on stderr.
sieve_generate_cli_test(ids ids NTOKENS 8
                        ARGS --model ${_engine_model} --ids 1,5,9 --max-tokens 8 --threads 1)
sieve_generate_cli_test(sparse_ids ids NTOKENS 8
                        ARGS --model ${_engine_model} --ids 1,5,9 --max-tokens 8 --threads 1
                             --attention rr --set dense_below=0)
sieve_generate_cli_test(context_warning ids NTOKENS 300
                        EXPECT "passes the model's context of 256 tokens"
                        ARGS --model ${_engine_model} --ids 1,5 --max-tokens 300 --threads 1)

# Bad input: one line "sieve: error: ..." and a non-zero exit.
sieve_generate_cli_test(err_no_model error EXPECT "does not exist"
                        ARGS --model ${CMAKE_CURRENT_BINARY_DIR}/no_such_model --ids 1)
sieve_generate_cli_test(err_bad_config error EXPECT "invalid JSON"
                        ARGS --model ${_engine_bad_model} --ids 1)
sieve_generate_cli_test(err_no_prompt error EXPECT "give exactly one of --prompt, --prompt-file or --ids"
                        ARGS --model ${_engine_model})
sieve_generate_cli_test(err_id_text error EXPECT "'x' is not an integer"
                        ARGS --model ${_engine_model} --ids 1,x)
sieve_generate_cli_test(err_id_vocab error EXPECT "is outside the vocabulary"
                        ARGS --model ${_engine_model} --ids 1280)
sieve_generate_cli_test(err_no_tokenizer error EXPECT "tokenizer.json' does not exist"
                        ARGS --model ${_engine_model} --prompt hello)
sieve_generate_cli_test(err_max_tokens error EXPECT "max_tokens must be >= 0"
                        ARGS --model ${_engine_model} --ids 1 --max-tokens -1)
sieve_generate_cli_test(err_top_p error EXPECT "top_p must be in (0, 1"
                        ARGS --model ${_engine_model} --ids 1 --top-p 2)
sieve_generate_cli_test(err_temperature error EXPECT "temperature must be finite"
                        ARGS --model ${_engine_model} --ids 1 --temperature nan)
sieve_generate_cli_test(err_attention error EXPECT "unknown attention method 'nope'"
                        ARGS --model ${_engine_model} --ids 1 --attention nope)
sieve_generate_cli_test(err_setting error EXPECT "tau must be in (0, 1"
                        ARGS --model ${_engine_model} --ids 1 --attention rr --set tau=2)
# settings are checked before the model loads (here: a model folder that does not exist)
sieve_generate_cli_test(err_setting_first error EXPECT "tau must be in (0, 1"
                        ARGS --model ${CMAKE_CURRENT_BINARY_DIR}/no_such_model --ids 1
                             --attention rr --set tau=2)
sieve_generate_cli_test(err_dense_setting error EXPECT "--set needs a sparse --attention method"
                        ARGS --model ${_engine_model} --ids 1 --set tau=0.5)
sieve_generate_cli_test(err_unknown_option error EXPECT "--nope"
                        ARGS --model ${_engine_model} --ids 1 --nope)
sieve_generate_cli_test(err_prompt_folder error EXPECT "is a folder, not a file"
                        ARGS --model ${_engine_model} --tokenizer ${_engine_tokenizer}
                             --prompt-file ${CMAKE_CURRENT_BINARY_DIR})
sieve_generate_cli_test(err_seed error EXPECT "--seed: must be a non-negative integer, got -5"
                        ARGS --model ${_engine_model} --ids 1 --seed -5)
sieve_generate_cli_test(err_threads error EXPECT "--threads must be >= 0"
                        ARGS --model ${_engine_model} --ids 1 --threads -2)
sieve_generate_cli_test(err_setting_other_method error EXPECT "is for method 'sample'"
                        ARGS --model ${_engine_model} --ids 1 --attention rr --set sample.alpha=0.9)
# the method-prefixed form of `sieve attn --set` works here too
sieve_generate_cli_test(sparse_prefixed_setting ids NTOKENS 4
                        ARGS --model ${_engine_model} --ids 1,5,9 --max-tokens 4 --threads 1
                             --attention rr --set rr.dense_below=0)

# `sieve perplexity` with the byte-level tokenizer fixture: bad settings and a missing file.
set(_engine_text ${PROJECT_SOURCE_DIR}/tests/cli/engine/check_cli.cmake)  # any text file
function(sieve_perplexity_cli_test name mode)
  sieve_cli_test(perplexity_cli_${name} ${_engine_cli_dir}/check_cli.cmake ${mode}
                 COMMAND perplexity ${ARGN})
endfunction()
sieve_perplexity_cli_test(err_context_zero error EXPECT "context must be >= 2 tokens, got 0"
                          ARGS --model ${_engine_model} --tokenizer ${_engine_tokenizer}
                               --file ${_engine_text} --context 0)
sieve_perplexity_cli_test(err_windows error EXPECT "max_windows must be >= 0"
                          ARGS --model ${_engine_model} --tokenizer ${_engine_tokenizer}
                               --file ${_engine_text} --windows -1)
sieve_perplexity_cli_test(err_missing_file error EXPECT "no_such_text.txt' does not exist"
                          ARGS --model ${_engine_model} --tokenizer ${_engine_tokenizer}
                               --file ${CMAKE_CURRENT_BINARY_DIR}/no_such_text.txt)
sieve_perplexity_cli_test(err_folder_file error EXPECT "is a folder, not a file"
                          ARGS --model ${_engine_model} --tokenizer ${_engine_tokenizer}
                               --file ${CMAKE_CURRENT_BINARY_DIR})
sieve_perplexity_cli_test(err_threads error EXPECT "--threads must be >= 0"
                          ARGS --model ${_engine_model} --tokenizer ${_engine_tokenizer}
                               --file ${_engine_text} --threads -1)
