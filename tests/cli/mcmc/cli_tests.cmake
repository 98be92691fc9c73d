# Smoke tests of `sieve mcmc` (label cpu): JSON / table / CSV output on a bundled data set with
# small runs, and one clear error line with a non-zero exit for each kind of bad input.
# Included from tests/CMakeLists.txt; each test runs check_cli.cmake in script mode.
if(NOT TARGET sieve)
  return()
endif()

set(_mcmc_cli_dir ${CMAKE_CURRENT_LIST_DIR})
set(_mcmc_small --chains 2 --warmup 150 --draws 150 --threads 1)

function(sieve_mcmc_cli_test name mode)
  sieve_cli_test(mcmc_cli_${name} ${_mcmc_cli_dir}/check_cli.cmake ${mode} TIMEOUT 300 ${ARGN})
endfunction()

# Working runs.
# 2 x 400 draws: long enough that R-hat < 1.1 is a fair check of a working sampler on d = 3.
sieve_mcmc_cli_test(json_logistic_ripley json NPARAMS 3
                    ARGS --model logistic --data ripley --sampler gi-mala --chains 2 --warmup 400
                         --draws 400 --threads 1 --json)
sieve_mcmc_cli_test(table_default_data table ARGS ${_mcmc_small})
sieve_mcmc_cli_test(json_cv_poisson json NPARAMS 3 CV 1
                    ARGS --data ripley --sampler gi-mala --chains 2 --warmup 400 --draws 400
                         --threads 1 --json --cv poisson)
sieve_mcmc_cli_test(json_cv_zv_nuts json NPARAMS 3 CV 1
                    ARGS --data ripley --sampler nuts --chains 2 --warmup 200 --draws 200
                         --threads 1 --json --cv zv)
set(_mcmc_cli_out ${CMAKE_CURRENT_BINARY_DIR}/mcmc_cli_out)
file(MAKE_DIRECTORY ${_mcmc_cli_out})
sieve_mcmc_cli_test(csv_out csv OUT ${_mcmc_cli_out}
                    ARGS --model gaussian --set dim=3 --sampler mala --chains 2 --warmup 30
                         --draws 30 --out ${_mcmc_cli_out}/draws.csv)

# Bad input: one line "sieve: error: ..." and a non-zero exit.
sieve_mcmc_cli_test(err_model error EXPECT "unknown model 'nope'" ARGS --model nope)
sieve_mcmc_cli_test(err_sampler error EXPECT "unknown sampler 'nope'" ARGS --sampler nope)
sieve_mcmc_cli_test(err_seed error EXPECT "--seed: must be a non-negative integer, got -1"
                    ARGS --seed -1)
sieve_mcmc_cli_test(err_missing_file error EXPECT "not found"
                    ARGS --data ${_mcmc_cli_dir}/no_such_file.csv)
sieve_mcmc_cli_test(err_no_response error EXPECT "no response column 'y'"
                    ARGS --data ${_mcmc_cli_dir}/bad_no_response.csv)
sieve_mcmc_cli_test(err_text_cell error EXPECT "'abc' is not a number"
                    ARGS --data ${_mcmc_cli_dir}/bad_text_cell.csv)
# An unwritable --out is found before sampling (a long run would be lost otherwise): the run is
# long enough that a check after it would time out here.
sieve_mcmc_cli_test(err_out_folder error EXPECT "folder '/nonexistent_sieve_dir' does not exist"
                    ARGS --chains 2 --warmup 1000000 --draws 1000000 --threads 1
                         --out /nonexistent_sieve_dir/draws.csv)
sieve_mcmc_cli_test(err_ragged error EXPECT "expected 3"
                    ARGS --data ${_mcmc_cli_dir}/bad_ragged.csv)
sieve_mcmc_cli_test(err_empty error EXPECT "empty" ARGS --data ${_mcmc_cli_dir}/bad_empty.csv)
sieve_mcmc_cli_test(err_chains error EXPECT "--chains" ARGS --chains 0)
sieve_mcmc_cli_test(err_chains_huge error EXPECT "--chains must be in [1, 100000], got 100000000"
                    ARGS --chains 100000000 --out ${_mcmc_cli_out}/huge.csv)
sieve_mcmc_cli_test(err_draws error EXPECT "--draws" ARGS --draws 2)
sieve_mcmc_cli_test(err_set_syntax error EXPECT "key=value" ARGS --set novalue)
sieve_mcmc_cli_test(err_set_unknown error EXPECT "no_such_key" ARGS --set no_such_key=1)
sieve_mcmc_cli_test(err_set_value error EXPECT "gamma" ARGS --set gamma=abc)
sieve_mcmc_cli_test(err_cv error EXPECT "--cv" ARGS --cv bogus)
sieve_mcmc_cli_test(err_cv_sampler error EXPECT "nuts has none" ARGS --sampler nuts --cv poisson
                    --chains 1 --warmup 20 --draws 20)
sieve_mcmc_cli_test(err_data_for_gaussian error EXPECT "takes no data"
                    ARGS --model gaussian --data pima)
