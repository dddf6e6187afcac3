#include "mpi_chain_group.h"

#include <climits>
#include <algorithm>
#include <string>

namespace vkn::cli {

MpiChainGroup::MpiChainGroup(MPI_Comm comm, uint32_t total_chains) : comm_(comm), total_chains_(total_chains) {
  int r = 0, s = 1;
  MPI_Comm_rank(comm, &r);
  MPI_Comm_size(comm, &s);
  rank_ = static_cast<uint32_t>(r);
  size_ = static_cast<uint32_t>(s);
}

Result<void> MpiChainGroup::allreduce_sum(std::span<double> values) {
  // MPI counts are ints: large vectors go in pieces (every rank cuts them the same way).
  for (size_t at = 0; at < values.size();) {
    const int n = static_cast<int>(std::min<size_t>(values.size() - at, INT_MAX / 2));
    const int rc = MPI_Allreduce(MPI_IN_PLACE, values.data() + at, n, MPI_DOUBLE, MPI_SUM, comm_);
    if (rc != MPI_SUCCESS) return std::unexpected(mpi_error(rc, "MPI_Allreduce over the ranks"));
    at += static_cast<size_t>(n);
  }
  return {};
}

Error mpi_error(int code, std::string_view what) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  return Error::make(Errc::node_dead, what, std::string_view(text, static_cast<size_t>(len)));
}

}  // namespace vkn::cli
