"""Projects: tasks, their schedule (critical path method) and the working calendar."""
