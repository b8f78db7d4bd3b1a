"""Design-space exploration on Dask (`cascade dse`): a config of workloads x target parameters,
points run as independent tasks, results appended to a CSV as they finish, and the Pareto front."""
