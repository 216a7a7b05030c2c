//! Projects: `project.yaml`, functions, workflows.
