//! Writers of the lab's report: `report.md`, `report.html`, `results.json` and the raw
//! probe samples, all from one [`LabResults`](super::results::LabResults).
