//! Scripted responses, for testing toolkits without their systems (`--responses`).
