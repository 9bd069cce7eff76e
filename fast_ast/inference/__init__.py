"""Using a trained checkpoint outside training: loading it for inference, sliding windows over long
recordings, event segments, input file lists (shared by fast_ast.eval, fast_ast.predict, fast_ast.export)."""
