# Reads the SDMX endpoint with R's rsdmx (Debian's r-cran-rsdmx), as a statistician would
# paste from docs/sdmx.md, and prints what it read as tab-separated lines for the Rust test to
# compare with GraphQL:
#   codelist <id> <code> <label>          for every code of the DSD's code lists
#   dimension <id>                        for every dimension of the DSD, in order
#   <section> <key> <period> <measure> <value> <OBS_STATUS>   for every observation
# Usage: Rscript client.R BASE_URL AS_OF
suppressPackageStartupMessages(library(rsdmx))
args <- commandArgs(trailingOnly = TRUE)
base <- args[1]
as_of <- args[2]

dsd <- readSDMX(paste0(base, "/datastructure/BOK/KR_KNOWLEDGE_SERVICES?references=children"))
for (cl in slot(slot(dsd, "codelists"), "codelists")) {
  for (code in slot(cl, "Code")) {
    label <- slot(code, "name")[["en"]]
    cat("codelist", slot(cl, "id"), slot(code, "id"), label, sep = "\t")
    cat("\n")
  }
}
ds <- slot(slot(dsd, "datastructures"), "datastructures")[[1]]
for (d in slot(slot(ds, "Components"), "Dimensions")) {
  cat("dimension", slot(d, "conceptRef"), sep = "\t")
  cat("\n")
}

figures <- function(section, url) {
  # rsdmx warns about its own vector tests on R >= 4.2; the values are unaffected.
  df <- suppressWarnings(as.data.frame(readSDMX(url)))
  for (i in seq_len(nrow(df))) {
    r <- df[i, ]
    key <- paste(r$SERVICE_TYPE, r$INDUSTRY, r$COUNTERPART, sep = ".")
    cat(section, key, r$obsTime, r$MEASURE, format(r$obsValue, scientific = FALSE, trim = TRUE),
        r$OBS_STATUS, sep = "\t")
    cat("\n")
  }
}
figures("all", paste0(base, "/data/KR_KNOWLEDGE_SERVICES"))
figures("key", paste0(base, "/data/KR_KNOWLEDGE_SERVICES/S.IPR+_T._T._T.BAL?startPeriod=2025"))
figures("as_of", paste0(base, "/data/KR_KNOWLEDGE_SERVICES?asOf=", as_of))
