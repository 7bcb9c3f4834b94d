//! Scenario files and their in-process runner. Filled by the scenarios issue.
