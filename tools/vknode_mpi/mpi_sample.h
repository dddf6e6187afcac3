// `vknode-mpi sample`: one sampler run over the ranks of MPI_COMM_WORLD (docs/mpi.md).
#pragma once

#include <span>
#include <string>

namespace vkn::cli {

// Called by every rank after MPI_Init; returns the rank's exit code (0, 1 failure, 2 usage).
// A rank whose sampling fails aborts the job (MPI_Abort) after saying why, since the other
// ranks would otherwise wait for it in a collective.
int mpi_sample_command(std::span<char* const> args);

// The usage text of `vknode-mpi sample`.
std::string mpi_sample_usage();

}  // namespace vkn::cli
