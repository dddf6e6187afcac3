// vknode-mpi: the sampler across MPI ranks (docs/mpi.md). One subcommand, `sample`, with the
// options of `vknode sample`.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <span>

#include "mpi_sample.h"

int main(int argc, char** argv) {
  const bool help = argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
  if (help || std::strcmp(argv[1], "sample") != 0) {
    std::fputs("usage: mpirun -np N vknode-mpi sample [MODEL] [options]   (vknode-mpi sample --help)\n",
               help ? stdout : stderr);
    return help ? 0 : 2;
  }
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(vkn::cli::mpi_sample_usage().c_str(), stdout);
      return 0;
    }
  }
  int provided = 0;
  // Only the main thread calls MPI; the node and CPU threads never do.
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fputs("vknode-mpi: MPI_Init failed\n", stderr);
    return 1;
  }
  const int code = vkn::cli::mpi_sample_command(std::span<char* const>(argv + 2, static_cast<size_t>(argc - 2)));
  MPI_Finalize();
  return code;
}
