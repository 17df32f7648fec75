"""Face geometry shared by training and runtime: one crop function for both."""
