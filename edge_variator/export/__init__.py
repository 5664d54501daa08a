"""Export to ExecuTorch (.pte) and Core ML (.mlpackage), and the bundle a phone app loads."""
