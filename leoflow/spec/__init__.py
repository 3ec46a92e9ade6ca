"""leoflow.yaml: the file model, the compiler, and the DAG / DAGRun resources it produces."""
