"""ACT: Action Chunking with Transformers (Zhao et al., 2023), a CVAE over action chunks."""
