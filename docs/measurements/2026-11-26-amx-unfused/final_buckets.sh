# The targets of issue #18 with bucketed packed shapes (main's code): final.sh's two rounds, into their own folder
exec bash "$(dirname "$0")/final.sh" "${1:-/tmp/amx9/final-buckets}"
