//! Writing the model out in each dialect (placeholder until implemented).
